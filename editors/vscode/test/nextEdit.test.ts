import assert from "node:assert/strict";
import { test } from "node:test";

import {
  hintText,
  inlineReplacement,
  isCurrent,
  parseInlineEdits,
  presentation,
  tabAction,
  type InlineEdit,
} from "../src/nextEdit";

const URI = "file:///work/area.py";

function wire(line: number, from: number, to: number, text: string, endLine = line): Record<string, unknown> {
  return {
    text,
    range: { start: { line, character: from }, end: { line: endLine, character: to } },
    textDocument: { uri: URI, version: 3 },
    command: { title: "Accept next edit", command: "diffusionCopilot.acceptInlineEdit", arguments: ["ab12-7.0"] },
  };
}

function edit(line: number, from: number, to: number, text: string, endLine = line): InlineEdit {
  const [parsed] = parseInlineEdits({ edits: [wire(line, from, to, text, endLine)] });
  assert.ok(parsed);
  return parsed;
}

test("a server answer is read field by field", () => {
  assert.deepEqual(parseInlineEdits({ edits: [wire(4, 10, 15, "w")] }), [
    {
      text: "w",
      range: { start: { line: 4, character: 10 }, end: { line: 4, character: 15 } },
      uri: URI,
      version: 3,
      command: { title: "Accept next edit", command: "diffusionCopilot.acceptInlineEdit", arguments: ["ab12-7.0"] },
    },
  ]);
});

test("no edits is the common answer; malformed edits are left out", () => {
  assert.deepEqual(parseInlineEdits({ edits: [] }), []);
  for (const raw of [null, undefined, {}, { edits: "x" }, []]) {
    assert.deepEqual(parseInlineEdits(raw), []);
  }
  const backwards = wire(4, 10, 2, "w");
  const negative = wire(-1, 0, 1, "w");
  const noText = { ...wire(1, 0, 1, "w"), text: 3 };
  const noUri = { ...wire(1, 0, 1, "w"), textDocument: {} };
  assert.deepEqual(parseInlineEdits({ edits: [backwards, negative, noText, noUri, wire(1, 0, 1, "ok")] }).length, 1);
});

test("a lone edit on the cursor's line is an inline completion; elsewhere, over several lines or with others, hints", () => {
  const rename = edit(4, 10, 15, "w");
  assert.equal(presentation([rename], 4), "inline");
  assert.equal(presentation([rename], 0), "hint");
  assert.equal(presentation([edit(4, 0, 2, "x\ny", 5)], 4), "hint"); // the stable API replaces within one line
  assert.equal(presentation([rename, edit(6, 4, 9, "w")], 4), "hint"); // it shows one replacement only
});

test("Tab jumps to an edit elsewhere, then applies it on its line", () => {
  const rename = edit(4, 10, 15, "w");
  assert.equal(tabAction([rename], 0), "jump");
  assert.equal(tabAction([rename], 4), "apply");
  assert.equal(tabAction([edit(2, 0, 1, "a", 5)], 3), "apply"); // inside a multi-line edit
  assert.equal(hintText(rename, "jump"), "→ w  (Tab to jump, Tab to apply)");
  assert.equal(hintText(rename, "apply"), "→ w  (Tab to apply)");
  assert.equal(hintText(edit(4, 10, 15, ""), "jump"), "delete  (Tab to jump, Tab to apply)");
  assert.match(hintText(edit(4, 0, 0, "x".repeat(100)), "jump"), /^→ x{57}\.\.\. {2}\(Tab/);
});

test("the edits of one answer apply together from any one's line", () => {
  const [first, second] = [edit(4, 10, 15, "w"), edit(6, 11, 16, "w")];
  const edits = [first, second];
  assert.equal(tabAction(edits, 0), "jump");
  assert.equal(tabAction(edits, 4), "apply");
  assert.equal(tabAction(edits, 6), "apply");
  assert.equal(hintText(second, "jump", 2), "→ w  (Tab to jump, Tab to apply all 2)");
  assert.equal(hintText(first, "apply", 2), "→ w  (Tab to apply all 2)");
});

test("the inline completion replaces the whole line with the edit applied", () => {
  const line = "    return width * height";
  assert.deepEqual(inlineReplacement(edit(1, 11, 16, "w"), line), {
    range: { start: { line: 1, character: 0 }, end: { line: 1, character: line.length } },
    text: "    return w * height",
  });
  assert.equal(inlineReplacement(edit(1, line.length, line.length, "  # area"), line).text, `${line}  # area`);
});

test("an answer for another document or version is stale", () => {
  const rename = edit(4, 10, 15, "w");
  assert.equal(isCurrent(rename, URI, 3), true);
  assert.equal(isCurrent(rename, URI, 4), false);
  assert.equal(isCurrent(rename, "file:///work/other.py", 3), false);
  assert.equal(isCurrent({ ...rename, version: undefined }, URI, 9), true);
});
