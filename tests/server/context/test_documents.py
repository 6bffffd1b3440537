"""The document store: edits applied through the line index, definitions re-extracted only around them, and the
window that large documents give their context from."""

from __future__ import annotations

import random

import pytest

from diffusion_copilot.server.context import documents
from diffusion_copilot.server.context.definitions import extract_definitions
from diffusion_copilot.server.context.documents import DocumentStore, TextChange, window

SOURCES = {
    "python": '''import os

# the first helper
def first(a, b):
    """Add them."""
    return a + b


class Shape:
    """A shape."""

    def area(self):
        return 0

    @property
    def name(self):
        return "shape"


@decorator
def second():
    pass

x = 1; y = 2
def third(): return first(1, 2)
''',
    "javascript": '''// a comment
function first(a) { return a; }

/** Documented. */
class Shape {
  area() { return 0; }
}

const second = (b) => b * 2;
function third() {}
''',
    "c": '''#include <stdio.h>

/* adds */
int add(int a, int b) { return a + b; }

struct point { int x; int y; };

// main
int main(void) {
    return add(1, 2);
}
''',
    "go": '''package main

// First does nothing.
func First() {}

type Shape struct {
    x int
}

func (s Shape) Area() int { return 0 }
''',
}
PIECES = ["x", "\n", "\n\ndef g(q):\n    pass\n", "# note\n", '"""', "}", "{", "/* ", " */", "\nfunction h() {}\n",
          "é", "😀", "    ", "\nclass K:\n    def m(self): pass\n", "// c\n", "func F() {}\n"]


def utf16_position(text: str, offset: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset), len(text[line_start:offset].encode("utf-16-le")) // 2


@pytest.mark.parametrize("language", sorted(SOURCES))
@pytest.mark.parametrize("seed", range(4))
def test_incremental_index_equals_a_full_index(language: str, seed: int) -> None:
    rng = random.Random(seed)
    text = SOURCES[language] * 3
    store, uri, path = DocumentStore(), "file:///doc", "/doc"
    store.open(uri, path, language, text)
    for _ in range(40):
        changes = []
        for _ in range(rng.choice([1, 1, 2, 4])):  # several changes in one didChange, as a batch of the worker
            start = rng.randrange(len(text) + 1)
            end = min(len(text), start + rng.choice([0, 0, 0, 1, 5, 30]))
            new = rng.choice(PIECES) if rng.random() < 0.8 else ""
            changes.append(TextChange(new, utf16_position(text, start), utf16_position(text, end)))
            text = text[:start] + new + text[end:]
        store.change(uri, changes, "utf-16", text)
        tree = store.trees[uri]
        assert tree.text == text
        assert store.index.definitions_in(path) == extract_definitions(language, tree.source, path)


@pytest.mark.parametrize("edit", [TextChange("X", (2, 3), (2, 3)), TextChange("", (3, 0), (4, 0)),
                                  TextChange("\n", (5, 0), (5, 0))])
def test_edited_comments_above_a_definition_are_its_new_doc(edit: TextChange) -> None:
    text = "int a;\n\n// one\n// two\n// three\nint f(void) { return 0; }\nint b;\nint c;\n"
    store = DocumentStore()
    store.open("file:///c", "/c.c", "c", text)
    lines = text.split("\n")
    assert edit.start is not None and edit.end is not None
    start = sum(len(line) + 1 for line in lines[: edit.start[0]]) + edit.start[1]
    end = sum(len(line) + 1 for line in lines[: edit.end[0]]) + edit.end[1]
    text = text[:start] + edit.text + text[end:]
    store.change("file:///c", [edit], "utf-16", text)
    assert store.index.definitions_in("/c.c") == extract_definitions("c", text.encode(), "/c.c")


def test_a_large_document_is_not_parsed_but_kept_in_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(documents, "LARGE_DOCUMENT_CHARS", 200)
    monkeypatch.setattr(documents, "LARGE_DOCUMENT_WINDOW_CHARS", 60)
    text = SOURCES["python"]
    store = DocumentStore()
    store.open("file:///big", "/big.py", "python", text)
    assert "file:///big" not in store.trees and "/big.py" not in store.index
    edited = text.replace("def first", "def zz")
    store.change("file:///big", [TextChange("zz", (3, 4), (3, 9))], "utf-16", edited)
    assert store.text("file:///big") == edited
    assert store.recent[-1].text.startswith("import os") and "def zz(a, b):" in store.recent[-1].text
    cursor = text.index("return a + b")
    context = store.context("file:///big", "/big.py", "python", text[:cursor], text[cursor:])
    assert len(context.prompt.prefix) <= 60 and context.prompt.prefix.endswith('"""Add them."""\n    ')


def test_window_keeps_whole_lines() -> None:
    assert window("ab\ncd\nef", "gh\nij\nkl", 5) == ("ef", "gh\n")
    assert window("ab", "cd", 5) == ("ab", "cd")


def test_a_whole_text_change_decides_again_whether_a_document_is_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(documents, "LARGE_DOCUMENT_CHARS", 200)
    store, small = DocumentStore(), "def f():\n    pass\n"
    store.open("file:///d", "/d.py", "python", small)
    store.change("file:///d", [TextChange(small * 20)], "utf-16", None)
    assert "file:///d" not in store.trees and "/d.py" not in store.index
    store.change("file:///d", [TextChange(small), TextChange("g", (0, 4), (0, 5))], "utf-16", "def g():\n    pass\n")
    assert store.trees["file:///d"].text == "def g():\n    pass\n"
    assert [d.name for d in store.index.definitions_in("/d.py")] == ["g"]
