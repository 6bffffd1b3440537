import assert from "node:assert/strict";
import { test } from "node:test";

import { parseServerStatus } from "../src/protocol";

test("a full status payload is read field by field", () => {
  const status = parseServerStatus({
    state: "ready",
    message: "",
    model: "default",
    hasRandomWeights: true,
    lastLatencyMs: 84.2,
  });
  assert.deepEqual(status, {
    state: "ready",
    message: undefined,
    model: "default",
    hasRandomWeights: true,
    lastLatencyMs: 84.2,
  });
});

test("optional fields may be missing or mistyped", () => {
  assert.deepEqual(
    parseServerStatus({ state: "loading", lastLatencyMs: "fast", model: null, hasRandomWeights: null }),
    {
      state: "loading",
      message: undefined,
      model: undefined,
      hasRandomWeights: false,
      lastLatencyMs: undefined,
    },
  );
});

for (const raw of [null, undefined, "ready", 3, [], {}, { state: "sleeping" }, { state: 1 }]) {
  test(`not a status: ${JSON.stringify(raw)}`, () => {
    assert.equal(parseServerStatus(raw), undefined);
  });
}
