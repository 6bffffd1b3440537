import assert from "node:assert/strict";
import { test } from "node:test";

import type { ServerStatus } from "../src/protocol";
import { formatLatency, statusView, type ClientState } from "../src/statusView";

const running: ClientState = { kind: "running" };

function status(fields: Partial<ServerStatus>): ServerStatus {
  return {
    state: "ready",
    message: undefined,
    model: undefined,
    hasRandomWeights: false,
    lastLatencyMs: undefined,
    ...fields,
  };
}

test("latency is shown in ms below a second and in seconds above", () => {
  assert.equal(formatLatency(84.4), "84 ms");
  assert.equal(formatLatency(1234), "1.2 s");
});

const cases: [string, ClientState, ServerStatus | undefined, boolean, string, string][] = [
  [
    "client starting",
    { kind: "starting" },
    undefined,
    true,
    "$(loading~spin) Diffusion",
    "Diffusion Copilot: starting",
  ],
  ["running, no status yet", running, undefined, true, "$(loading~spin) Diffusion", "Diffusion Copilot: starting"],
  ["loading", running, status({ state: "loading" }), true, "$(loading~spin) Diffusion", "Diffusion Copilot: loading"],
  ["ready", running, status({}), true, "$(sparkle) Diffusion", "Diffusion Copilot: ready"],
  [
    "ready with a latency",
    running,
    status({ lastLatencyMs: 84 }),
    true,
    "$(sparkle) Diffusion 84 ms",
    "Diffusion Copilot: ready, 84 ms",
  ],
  [
    "disabled",
    running,
    status({ lastLatencyMs: 84 }),
    false,
    "$(circle-slash) Diffusion",
    "Diffusion Copilot: disabled, 84 ms",
  ],
  ["busy", running, status({ state: "busy" }), true, "$(sync~spin) Diffusion", "Diffusion Copilot: busy"],
  [
    "engine error",
    running,
    status({ state: "error", message: "out of memory" }),
    true,
    "$(error) Diffusion",
    "Diffusion Copilot: error, out of memory",
  ],
  ["stopped", { kind: "stopped" }, status({}), true, "$(debug-stop) Diffusion", "Diffusion Copilot: stopped"],
  [
    "failed to start",
    { kind: "failed", reason: "spawn diffusion-copilot ENOENT" },
    undefined,
    true,
    "$(error) Diffusion",
    "Diffusion Copilot: failed, spawn diffusion-copilot ENOENT",
  ],
];
for (const [name, client, server, isEnabled, text, label] of cases) {
  test(`status view: ${name}`, () => {
    const view = statusView(client, server, isEnabled);
    assert.equal(view.text, text);
    assert.equal(view.label, label);
    assert.ok(view.tooltip.endsWith("Click for options."));
  });
}

test("errors are coloured as errors, random weights as a warning", () => {
  assert.equal(statusView(running, status({ state: "error" }), true).isError, true);
  assert.equal(statusView({ kind: "failed", reason: "x" }, undefined, true).isError, true);
  assert.equal(statusView(running, status({}), true).isError, false);
  const random = statusView(running, status({ hasRandomWeights: true, model: "tiny" }), true);
  assert.equal(random.isWarning, true);
  assert.match(random.tooltip, /random weights/);
  assert.match(random.tooltip, /Model: tiny/);
});
