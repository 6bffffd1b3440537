"""One completion, whatever the front end: a document and a cursor in, texts to insert at the cursor out.

The CLI, the language server and the HTTP API all go through `prompt_parts` and `completion_items`, so they give
the same completions for the same document and cursor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from diffusion_copilot.engine import JobResult, PromptParts, strip_healed

LANGUAGE_BY_SUFFIX = {
    ".py": "python",
    ".js": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".hpp": "cpp",
    ".lua": "lua",
    ".rb": "ruby",
    ".sh": "bash",
    ".bash": "bash",
}


@dataclass(frozen=True)
class CompletionRequest:
    """A cursor in a document, 0-based line and character (code points), and how much work to spend on it."""

    path: str
    language: str
    text: str
    line: int
    character: int
    alternatives: int = 1
    canvas_length: int = 32
    max_steps: int | None = 16
    time_budget_s: float | None = None
    seed: int | None = None


@dataclass(frozen=True)
class CompletionItem:
    """Text to insert at the cursor (it may span lines), with the mean confidence of its tokens."""

    text: str
    line: int
    character: int
    confidence: float


def language_for_path(path: str) -> str:
    """The language id for a file name, or 'plaintext'."""
    return LANGUAGE_BY_SUFFIX.get(PurePath(path).suffix.lower(), "plaintext")


def cursor_offset(text: str, line: int, character: int) -> int:
    """The string index of a (line, character) cursor; ValueError when it lies outside the text."""
    lines = text.split("\n")
    if not 0 <= line < len(lines):
        raise ValueError(f"line {line + 1} is out of range (the file has {len(lines)} lines)")
    if not 0 <= character <= len(lines[line]):
        raise ValueError(f"column {character + 1} is out of range (line {line + 1} has {len(lines[line])} characters)")
    return sum(len(previous) + 1 for previous in lines[:line]) + character


def prompt_parts(request: CompletionRequest) -> PromptParts:
    """What the model sees: the text before and after the cursor."""
    offset = cursor_offset(request.text, request.line, request.character)
    return PromptParts(
        path=request.path, language=request.language, prefix=request.text[:offset], suffix=request.text[offset:]
    )


def completion_items(request: CompletionRequest, result: JobResult) -> tuple[CompletionItem, ...]:
    """Turn the engine's canvases into insertable items: healed characters stripped, empty and duplicate texts
    dropped."""
    items: list[CompletionItem] = []
    seen: set[str] = set()
    for canvas in result.canvases:
        text = strip_healed(canvas.text, result.healed)
        if text is None or not text.strip() or text in seen:
            continue
        seen.add(text)
        confidence = sum(canvas.confidence) / len(canvas.confidence) if canvas.confidence else 0.0
        items.append(CompletionItem(text=text, line=request.line, character=request.character, confidence=confidence))
    return tuple(items)
