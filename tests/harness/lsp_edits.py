"""LSP text edits applied to a text, as an editor applies them: what the editor end-to-end tests expect a file to
hold after a suggestion is accepted."""

from __future__ import annotations

from typing import Any


def with_edits(text: str, edits: list[dict[str, Any]]) -> str:
    """`text` with the LSP text edits applied (ranges in UTF-16 columns of `text`, none overlapping)."""
    lines = text.split("\n")

    def offset(position: dict[str, int]) -> int:
        line = lines[position["line"]]
        column = len(line.encode("utf-16-le")[: 2 * position["character"]].decode("utf-16-le"))
        return sum(len(before) + 1 for before in lines[: position["line"]]) + column

    spans = sorted(((offset(e["range"]["start"]), offset(e["range"]["end"]), e["text"]) for e in edits), reverse=True)
    for start, end, new in spans:
        text = text[:start] + new + text[end:]
    return text
