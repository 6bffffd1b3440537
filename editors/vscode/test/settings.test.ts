import assert from "node:assert/strict";
import { test } from "node:test";

import {
  cliLaunch,
  describeLaunch,
  initializationSettings,
  isMachineKey,
  readSettings,
  serverLaunch,
  serverSettings,
  userLevel,
  type SettingGetter,
} from "../src/settings";

function getter(values: Record<string, unknown>): SettingGetter {
  return (key) => values[key];
}

test("defaults when nothing is set", () => {
  assert.deepEqual(readSettings(getter({})), { enable: true, serverCommand: [], python: "", extraArgs: [] });
});

test("mistyped values fall back to defaults", () => {
  const settings = readSettings(getter({ enable: "no", "server.command": "dc", "server.python": 3 }));
  assert.deepEqual(settings, { enable: true, serverCommand: [], python: "", extraArgs: [] });
});

const launches: [string, Record<string, unknown>, string[]][] = [
  ["the console script by default", {}, ["diffusion-copilot", "serve"]],
  [
    "a Python interpreter",
    { "server.python": " /venv/bin/python " },
    ["/venv/bin/python", "-m", "diffusion_copilot.server.cli", "serve"],
  ],
  [
    "an explicit command wins over python",
    { "server.command": ["/opt/dc", "--log-level", "INFO", ""], "server.python": "/venv/bin/python" },
    ["/opt/dc", "--log-level", "INFO", "serve"],
  ],
  [
    "extra arguments after serve",
    { "server.extraArgs": ["--tcp", 7, "127.0.0.1:2087"] },
    ["diffusion-copilot", "serve", "--tcp", "127.0.0.1:2087"],
  ],
];
for (const [name, values, expected] of launches) {
  test(`server launch: ${name}`, () => {
    const launch = serverLaunch(readSettings(getter(values)));
    assert.deepEqual([launch.command, ...launch.args], expected);
  });
}

test("other CLI subcommands reuse the command", () => {
  const launch = cliLaunch(readSettings(getter({ "server.python": "py" })), ["stats"]);
  assert.deepEqual([launch.command, ...launch.args], ["py", "-m", "diffusion_copilot.server.cli", "stats"]);
});

test("launch descriptions quote what a shell would split", () => {
  assert.equal(describeLaunch({ command: "/a b/python", args: ["-m", "x", "serve"] }), '"/a b/python" -m x serve');
});

test("the server gets its own keys only, as plain JSON", () => {
  const section = {
    enable: false,
    model: null,
    maxSteps: 8,
    server: { command: ["x"], python: "", extraArgs: [] },
    trace: { server: "verbose" },
    engineCommand: ["sh", "-c", "id"],
    vllmUrls: ["http://elsewhere:8000"],
    vllmTokenEnv: "HOME",
    get: () => undefined,
  };
  assert.deepEqual(serverSettings(section), { enable: false, model: null, maxSteps: 8 });
  assert.deepEqual(serverSettings(undefined), {});
  assert.deepEqual(serverSettings([1]), {});
});

test("machine keys come from user settings only, at start", () => {
  const section = { maxSteps: 8, engineCommand: ["from-the-workspace"] };
  const user = getter({ engineCommand: ["/opt/dc/engine"], vllmTokenEnv: "DIFFUSION_COPILOT_TEAM_TOKEN" });
  assert.deepEqual(initializationSettings(section, user), {
    maxSteps: 8,
    engineCommand: ["/opt/dc/engine"],
    vllmTokenEnv: "DIFFUSION_COPILOT_TEAM_TOKEN",
  });
  const inspected = { defaultValue: [], globalValue: undefined, workspaceValue: ["sh"], workspaceFolderValue: ["sh"] };
  assert.deepEqual(userLevel(inspected), []);
  assert.deepEqual(userLevel({ defaultValue: [], globalValue: ["/opt/dc/engine"] }), ["/opt/dc/engine"]);
  assert.equal(userLevel(undefined), undefined);
  assert.ok(isMachineKey("engineCommand") && isMachineKey("server.python") && !isMachineKey("maxSteps"));
});
