// Next-edit suggestions in the editor, with stable APIs only: after an edit, asks the server for the edits that
// follow; shows a lone one on the cursor's line as an inline completion, else a hint at each edit's line (old text
// struck through) with "Tab to jump, Tab to apply" while a context key routes Tab here: the first Tab moves to the
// first edit, the next applies them all. Escape or any other edit clears them. What to show and what Tab does come
// from nextEdit.ts.

import * as vscode from "vscode";

import type { ServerClient } from "./client";
import {
  DID_SHOW_INLINE_EDIT,
  hintText,
  INLINE_EDIT_REQUEST,
  inlineReplacement,
  isCurrent,
  parseInlineEdits,
  PENDING_CONTEXT_KEY,
  presentation,
  tabAction,
  type InlineEdit,
  type Range,
} from "./nextEdit";
import { SECTION } from "./settings";

export const NEXT_EDIT_TAB_COMMAND = "diffusionCopilot.nextEditTab";
export const NEXT_EDIT_CLEAR_COMMAND = "diffusionCopilot.nextEditClear";
const PAUSE_MS = 100; // coalesces a burst of changes into one request; the server waits nextEdit.debounceMs more

function vscodeRange(range: Range): vscode.Range {
  return new vscode.Range(range.start.line, range.start.character, range.end.line, range.end.character);
}

function isEnabled(): boolean {
  const config = vscode.workspace.getConfiguration(SECTION);
  return config.get<boolean>("enable") !== false && config.get<boolean>("nextEdit.enabled") !== false;
}

export class NextEditView implements vscode.Disposable, vscode.InlineCompletionItemProvider {
  /** The suggested edits (one answer, in document order); `inline` while the inline completion UI shows the lone
   * edit (it arrived with the cursor on its line and no jump since), else hints do, Tab routed here, on their lines
   * too ("Tab to apply"). */
  private pending: { edits: InlineEdit[]; document: vscode.TextDocument; inline: boolean } | undefined;
  private asking: vscode.CancellationTokenSource | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly hint = vscode.window.createTextEditorDecorationType({
    after: { margin: "0 0 0 2em", color: new vscode.ThemeColor("editorGhostText.foreground") },
  });
  private readonly old = vscode.window.createTextEditorDecorationType({
    textDecoration: "line-through",
    backgroundColor: new vscode.ThemeColor("diffEditor.removedTextBackground"),
  });

  constructor(
    private readonly client: ServerClient,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  /** The listeners, the inline provider and the Tab and Escape commands. */
  register(): vscode.Disposable[] {
    return [
      vscode.workspace.onDidChangeTextDocument((event) => this.changed(event)),
      vscode.window.onDidChangeActiveTextEditor(() => void this.clear()),
      vscode.window.onDidChangeTextEditorSelection((event) => this.draw(event.textEditor)),
      vscode.languages.registerInlineCompletionItemProvider([{ scheme: "file" }, { scheme: "untitled" }], this),
      vscode.commands.registerCommand(NEXT_EDIT_TAB_COMMAND, () => this.tab()),
      vscode.commands.registerCommand(NEXT_EDIT_CLEAR_COMMAND, () => this.clear()),
      this,
    ];
  }

  provideInlineCompletionItems(
    document: vscode.TextDocument,
    position: vscode.Position,
  ): vscode.InlineCompletionItem[] | undefined {
    const pending = this.pending;
    const edit = pending?.edits[0];
    if (
      pending?.document !== document ||
      edit === undefined ||
      !pending.inline ||
      presentation(pending.edits, position.line) !== "inline"
    ) {
      return undefined;
    }
    const { range, text } = inlineReplacement(edit, document.lineAt(position.line).text);
    const command = edit.command;
    return [
      new vscode.InlineCompletionItem(
        text,
        vscodeRange(range),
        command && { title: command.title, command: command.command, arguments: command.arguments },
      ),
    ];
  }

  dispose(): void {
    void this.clear();
    this.hint.dispose();
    this.old.dispose();
  }

  private changed(event: vscode.TextDocumentChangeEvent): void {
    const editor = vscode.window.activeTextEditor;
    if (event.contentChanges.length === 0 || editor?.document !== event.document) {
      return;
    }
    void this.clear();
    if (isEnabled()) {
      this.timer = setTimeout(() => void this.ask(editor), PAUSE_MS);
    }
  }

  private async ask(editor: vscode.TextEditor): Promise<void> {
    const document = editor.document;
    const version = document.version;
    const asking = new vscode.CancellationTokenSource();
    this.asking = asking;
    const params = {
      textDocument: { uri: document.uri.toString(), version },
      position: { line: editor.selection.active.line, character: editor.selection.active.character },
    };
    let result: unknown;
    try {
      result = await this.client.request(INLINE_EDIT_REQUEST, params, asking.token);
    } catch {
      return; // cancelled by a newer edit, or the server went away
    }
    if (asking.token.isCancellationRequested || document.version !== version) {
      return;
    }
    // Every answer as the server sent it, malformed edits included (for debugging and end-to-end tests).
    const where = `${document.uri.fsPath}:${params.position.line}:${params.position.character}`;
    this.log.debug(`next edit ${where} -> ${JSON.stringify(result ?? null)}`);
    const edits = parseInlineEdits(result).filter((e) => isCurrent(e, document.uri.toString(), version));
    if (edits.length === 0 || vscode.window.activeTextEditor !== editor) {
      return;
    }
    const inline = presentation(edits, editor.selection.active.line) === "inline";
    this.pending = { edits, document, inline };
    for (const edit of edits) {
      if (edit.command) {
        this.client.notify(DID_SHOW_INLINE_EDIT, { item: { command: edit.command } });
      }
    }
    this.draw(editor);
    if (inline) {
      await vscode.commands.executeCommand("editor.action.inlineSuggest.trigger");
    }
  }

  /** Shows the pending edits: a hint at each one's line (Tab routed here), except on the cursor's line while the
   * inline completion shows the lone edit. */
  private draw(editor: vscode.TextEditor): void {
    const pending = this.pending;
    if (pending?.document !== editor.document) {
      return;
    }
    const cursorLine = editor.selection.active.line;
    const isHint = !pending.inline || presentation(pending.edits, cursorLine) === "hint";
    const action = tabAction(pending.edits, cursorLine);
    const hints = pending.edits.map((edit) => {
      const line = editor.document.lineAt(Math.min(edit.range.end.line, editor.document.lineCount - 1));
      const contentText = hintText(edit, action, pending.edits.length);
      return { range: line.range, renderOptions: { after: { contentText } } };
    });
    const old = pending.edits.map((edit) => vscodeRange(edit.range)).filter((range) => !range.isEmpty);
    editor.setDecorations(this.hint, isHint ? hints : []);
    editor.setDecorations(this.old, isHint ? old : []);
    void vscode.commands.executeCommand("setContext", PENDING_CONTEXT_KEY, isHint);
  }

  private async tab(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    const pending = this.pending;
    if (editor === undefined || pending?.document !== editor.document) {
      await this.clear();
      return;
    }
    const { edits } = pending;
    const [first] = edits;
    if (first === undefined) {
      await this.clear();
      return;
    }
    if (tabAction(edits, editor.selection.active.line) === "jump") {
      const start = new vscode.Position(first.range.start.line, first.range.start.character);
      // Nothing asks the inline completion UI again after a jump: the hint stays, and the next Tab applies.
      this.pending = { ...pending, inline: false };
      editor.selection = new vscode.Selection(start, start);
      editor.revealRange(new vscode.Range(start, start), vscode.TextEditorRevealType.InCenterIfOutsideViewport);
      this.draw(editor);
      return;
    }
    await this.clear();
    const applied = await editor.edit((builder) => {
      for (const edit of edits) {
        builder.replace(vscodeRange(edit.range), edit.text); // each range as the answer gave it: one undo step
      }
    });
    for (const command of applied ? edits.map((edit) => edit.command) : []) {
      if (command) {
        await vscode.commands.executeCommand(command.command, ...(command.arguments ?? []));
      }
    }
  }

  private async clear(): Promise<void> {
    clearTimeout(this.timer);
    this.asking?.cancel();
    this.asking = undefined;
    if (this.pending === undefined) {
      return;
    }
    this.pending = undefined;
    for (const editor of vscode.window.visibleTextEditors) {
      editor.setDecorations(this.hint, []);
      editor.setDecorations(this.old, []);
    }
    await vscode.commands.executeCommand("setContext", PENDING_CONTEXT_KEY, false);
  }
}
