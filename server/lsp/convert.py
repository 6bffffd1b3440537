"""LSP types to the server's plain types and back: a content change, an inline-completion request, the answer's
items, the status notification's payload, the completion id a telemetry notification names. Pure functions; the
only module of the language server besides handlers.py that builds lsprotocol values.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlparse

from lsprotocol import types as t
from pygls.workspace import TextDocument

from diffusion_copilot.engine.protocol import EngineStatus

from ..completion.inline import CursorRequest, InlineAnswer
from ..context.documents import LARGE_DOCUMENT_CHARS, LARGE_DOCUMENT_WINDOW_CHARS, TextChange
from ..context.indexed_document import IndexedDocument
from ..context.paths import shown_path
from ..context.positions import offset_at

ACCEPT_COMMAND = "diffusionCopilot.accept"


def text_change(change: t.TextDocumentContentChangeEvent) -> TextChange:
    """A content change as plain data (a range in the negotiated position encoding, or the whole text)."""
    if isinstance(change, t.TextDocumentContentChangePartial):
        start, end = change.range.start, change.range.end
        return TextChange(change.text, (start.line, start.character), (end.line, end.character))
    return TextChange(change.text)


def position_encoding(kind: t.PositionEncodingKind | str | None) -> str:
    """The negotiated encoding as its protocol name (`utf-16` when none was negotiated)."""
    if isinstance(kind, t.PositionEncodingKind):
        return str(kind.value)
    return kind or "utf-16"


def document_path(doc: TextDocument) -> str:
    """The file path of a `file:` document; the uri of any other."""
    return unquote(urlparse(doc.uri).path) if doc.uri.startswith("file:") else doc.uri


def workspace_roots(workspace: Any) -> list[str]:
    """The file paths of a pygls workspace's folders and root."""
    uris = [folder.uri for folder in getattr(workspace, "folders", {}).values()]
    roots = [unquote(urlparse(uri).path) for uri in uris if uri.startswith("file:")]
    return [*roots, workspace.root_path] if getattr(workspace, "root_path", None) else roots


def is_large(doc: TextDocument) -> bool:
    """Whether a document is too large to join its text for each request or edit."""
    return isinstance(doc, IndexedDocument) and doc.length > LARGE_DOCUMENT_CHARS


def cursor_request(
    doc: TextDocument, params: t.InlineCompletionParams, encoding: str, roots: Iterable[str] = ()
) -> CursorRequest | None:
    """The plain request for `params`, or None when the position lies outside the document."""
    is_large_doc = is_large(doc)  # the text is not joined
    text = "" if is_large_doc else doc.source

    def offset(position: t.Position) -> int | None:
        if isinstance(doc, IndexedDocument):
            return doc.offset_at(position.line, position.character)
        return offset_at(text, position.line, position.character, encoding)

    cursor = offset(params.position)
    if cursor is None:
        return None
    before, lead, after = cursor, "", cursor  # prefix: text[:before] + lead; suffix: text[after:]
    selected = params.context.selected_completion_info
    if selected is not None:
        start, end = offset(selected.range.start), offset(selected.range.end)
        if start is not None and end is not None and start <= end and selected.range.start.line == \
                selected.range.end.line:
            before, lead, after = start, selected.text, max(end, cursor)
    if isinstance(doc, IndexedDocument) and is_large_doc:  # its context is this window anyway
        prefix, suffix = doc.window(before, lead, after, LARGE_DOCUMENT_WINDOW_CHARS)
    else:
        prefix, suffix = text[:before] + lead, text[after:]
    invoked = params.context.trigger_kind == t.InlineCompletionTriggerKind.Invoked
    path = document_path(doc)
    return CursorRequest(uri=doc.uri, path=path, language=doc.language_id or "plaintext", prefix=prefix,
                         suffix=suffix, cursor_offset=before + len(lead), invoked=invoked,
                         shown_path=shown_path(path, roots))


def completion_list(params: t.InlineCompletionParams, answer: InlineAnswer, completion_id: str
                    ) -> t.InlineCompletionList:
    """The answer's texts as items that replace a selected completion's range (else insert at the cursor); each
    item's accept command names `completion_id` and its index."""
    selected = params.context.selected_completion_info
    cursor = t.Range(start=params.position, end=params.position)
    edit_range, lead = (selected.range, selected.text) if selected is not None else (cursor, "")
    return t.InlineCompletionList(items=[
        t.InlineCompletionItem(insert_text=lead + text, range=edit_range, command=t.Command(
            title="Accept", command=ACCEPT_COMMAND, arguments=[f"{completion_id}.{index}"]))
        for index, text in enumerate(answer.texts)
    ])


def status_payload(status: EngineStatus, last_latency_ms: float | None) -> dict[str, Any]:
    """The `diffusionCopilot/status` notification's params."""
    return {"state": status.state.value, "message": status.message, "model": status.model,
            "hasRandomWeights": status.has_random_weights, "kernels": status.kernels,
            "lastLatencyMs": last_latency_ms}


def completion_id_of(params: Any) -> str | None:
    """The completion a show or partial-accept notification names (through its item's command), or None."""
    try:
        item = params.item if hasattr(params, "item") else params["item"]
        command = item.command if hasattr(item, "command") else item["command"]
        arguments = command.arguments if hasattr(command, "arguments") else command["arguments"]
        return str(arguments[0]).split(".")[0]
    except (KeyError, TypeError, IndexError, AttributeError):
        return None
