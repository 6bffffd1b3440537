import assert from "node:assert/strict";
import { test } from "node:test";

import { discover, workspacePythons, type Places } from "../src/discovery";
import { readSettings } from "../src/settings";

const places: Places = { pathVariable: "/usr/bin:/opt/tools/bin", home: "/home/u", env: {}, isWindows: false };
const none = readSettings(() => undefined);

function only(...files: string[]): (file: string) => boolean {
  return (file) => files.includes(file);
}

test("PATH first, then ~/.local/bin, then pipx", () => {
  const everywhere = only(
    "/opt/tools/bin/diffusion-copilot",
    "/home/u/.local/bin/diffusion-copilot",
    "/home/u/.local/share/pipx/venvs/diffusion-copilot/bin/diffusion-copilot",
  );
  assert.deepEqual(discover(none, places, everywhere), {
    kind: "found",
    command: ["/opt/tools/bin/diffusion-copilot"],
    where: "PATH",
  });
  const pipx = "/home/u/.local/share/pipx/venvs/diffusion-copilot/bin/diffusion-copilot";
  assert.deepEqual(discover(none, places, only(pipx)), { kind: "found", command: [pipx], where: "pipx" });
  const custom = { ...places, env: { PIPX_HOME: "/srv/pipx" } };
  const moved = "/srv/pipx/venvs/diffusion-copilot/bin/diffusion-copilot";
  assert.equal(discover(none, custom, only(moved)).kind, "found");
});

test("nothing found names the setting that fixes it", () => {
  const found = discover(none, places, only());
  assert.equal(found.kind, "missing");
  assert.equal(found.kind === "missing" && found.setting, "server.python");
});

test("the settings win, and a missing one is reported, not replaced by a search", () => {
  const python = readSettings((key) => (key === "server.python" ? "/venv/bin/python" : undefined));
  assert.deepEqual(discover(python, places, only("/venv/bin/python", "/usr/bin/diffusion-copilot")).kind, "found");
  const missing = discover(python, places, only("/usr/bin/diffusion-copilot"));
  assert.equal(missing.kind === "missing" && missing.setting, "server.python");
});

test("a workspace's virtual environments are listed, never found by discover()", () => {
  const venvPython = "/ws/.venv/bin/python";
  assert.deepEqual(workspacePythons(["/ws"], places, only(venvPython, "/ws/.venv/bin/diffusion-copilot")), [
    venvPython,
  ]);
  assert.equal(
    discover(none, { ...places, pathVariable: "" }, only("/ws/.venv/bin/diffusion-copilot")).kind,
    "missing",
  );
});
