// Next-edit suggestions as plain data: the server's `textDocument/copilotInlineEdit` answer read and checked, how
// it is shown (a lone edit on the cursor's line as an inline completion, else a hint at each edit's line with "Tab
// to jump, Tab to apply"), and what Tab does: jump to the first edit, then apply all of them at once (a rename's
// other sites together). Pure: no `vscode` import, so the unit tests run under plain node.

export const INLINE_EDIT_REQUEST = "textDocument/copilotInlineEdit";
export const DID_SHOW_INLINE_EDIT = "textDocument/didShowInlineEdit";
/** The context key that is true while a suggested edit away from the cursor waits for Tab. */
export const PENDING_CONTEXT_KEY = "diffusionCopilot.nextEditPending";

export interface Position {
  readonly line: number;
  readonly character: number;
}

export interface Range {
  readonly start: Position;
  readonly end: Position;
}

export interface WireCommand {
  readonly title: string;
  readonly command: string;
  readonly arguments?: unknown[];
}

/** One edit of the server's answer: replace `range` of document `uri` at `version` with `text`. */
export interface InlineEdit {
  readonly text: string;
  readonly range: Range;
  readonly uri: string;
  readonly version: number | undefined;
  readonly command: WireCommand | undefined;
}

function isPosition(value: unknown): value is Position {
  const fields = value as Record<string, unknown> | null;
  return (
    typeof fields === "object" &&
    fields !== null &&
    Number.isInteger(fields["line"]) &&
    Number.isInteger(fields["character"]) &&
    (fields["line"] as number) >= 0 &&
    (fields["character"] as number) >= 0
  );
}

function isBefore(a: Position, b: Position): boolean {
  return a.line < b.line || (a.line === b.line && a.character <= b.character);
}

function parseCommand(raw: unknown): WireCommand | undefined {
  const fields = raw as Record<string, unknown> | null;
  if (typeof fields !== "object" || fields === null || typeof fields["command"] !== "string") {
    return undefined;
  }
  const args = fields["arguments"];
  return {
    title: typeof fields["title"] === "string" ? fields["title"] : "",
    command: fields["command"],
    arguments: Array.isArray(args) ? args : undefined,
  };
}

/** The well-formed edits of a copilotInlineEdit result (`{edits: [...]}`); malformed ones are left out. */
export function parseInlineEdits(raw: unknown): InlineEdit[] {
  const edits = (raw as Record<string, unknown> | null)?.["edits"];
  if (!Array.isArray(edits)) {
    return [];
  }
  const parsed: InlineEdit[] = [];
  for (const item of edits) {
    const fields = item as Record<string, unknown> | null;
    const range = fields?.["range"] as Record<string, unknown> | undefined;
    const document = fields?.["textDocument"] as Record<string, unknown> | undefined;
    if (
      typeof fields?.["text"] !== "string" ||
      !isPosition(range?.["start"]) ||
      !isPosition(range?.["end"]) ||
      !isBefore(range["start"], range["end"]) ||
      typeof document?.["uri"] !== "string"
    ) {
      continue;
    }
    parsed.push({
      text: fields["text"],
      range: { start: range["start"], end: range["end"] },
      uri: document["uri"],
      version: typeof document["version"] === "number" ? document["version"] : undefined,
      command: parseCommand(fields["command"]),
    });
  }
  return parsed;
}

/** Whether an edit's range touches `line` (where the inline completion UI can show it). */
export function touchesLine(edit: InlineEdit, line: number): boolean {
  return edit.range.start.line <= line && line <= edit.range.end.line;
}

/**
 * How an answer is shown: "inline" (an inline completion replacing a range) when it is one edit on the cursor's
 * line, since the stable API shows one replacement whose range must begin and end on one line; else "hint" at each
 * edit's line.
 */
export function presentation(edits: readonly InlineEdit[], cursorLine: number): "inline" | "hint" {
  const [edit] = edits;
  return edits.length === 1 && edit?.range.start.line === cursorLine && edit.range.end.line === cursorLine
    ? "inline"
    : "hint";
}

/** What Tab does while edits are pending: move to the first from elsewhere, apply them all on any one's line. */
export function tabAction(edits: readonly InlineEdit[], cursorLine: number): "jump" | "apply" {
  return edits.some((edit) => touchesLine(edit, cursorLine)) ? "apply" : "jump";
}

/** The hint drawn after one edit's line, with the keys for the whole answer of `count` edits. */
export function hintText(edit: InlineEdit, action: "jump" | "apply", count = 1): string {
  const preview = edit.text.split("\n")[0] ?? "";
  const shown = preview.length > 60 ? `${preview.slice(0, 57)}...` : preview;
  const apply = count > 1 ? `Tab to apply all ${count}` : "Tab to apply";
  const keys = action === "jump" ? `Tab to jump, ${apply}` : apply;
  return edit.text.length > 0 ? `→ ${shown}  (${keys})` : `delete  (${keys})`;
}

/**
 * The edit as an inline completion replacing its whole line (the item's range must hold the cursor, which may sit
 * anywhere on the line): the range is the line, the text is the line with the edit applied.
 */
export function inlineReplacement(edit: InlineEdit, line: string): { range: Range; text: string } {
  const number = edit.range.start.line;
  return {
    range: { start: { line: number, character: 0 }, end: { line: number, character: line.length } },
    text: line.slice(0, edit.range.start.character) + edit.text + line.slice(edit.range.end.character),
  };
}

/** Whether an answer still applies: same document, same version as the one it was asked for. */
export function isCurrent(edit: InlineEdit, uri: string, version: number): boolean {
  return edit.uri === uri && (edit.version === undefined || edit.version === version);
}
