"""Syntax trees: grammars load offline, incremental re-parses match fresh parses, edits carry correct points."""

from __future__ import annotations

import pytest

from diffusion_copilot.server.context.languages import (
    LANGUAGES,
    PLAIN_TEXT,
    grammar,
    language_for_path,
    resolve_language,
)
from diffusion_copilot.server.context.syntax import SyntaxTree, byte_edit, enclosing_node, parse, point_at

SOURCES = {
    "python": "def f(a):\n    return a\n",
    "javascript": "function f(a) {\n  return a;\n}\n",
    "typescript": "function f(a: number): number {\n  return a;\n}\n",
    "typescriptreact": "const A = () => <div>{1}</div>;\n",
    "go": "package m\n\nfunc f(a int) int {\n\treturn a\n}\n",
    "rust": "fn f(a: i32) -> i32 {\n    a\n}\n",
    "java": "class A {\n  int f(int a) {\n    return a;\n  }\n}\n",
    "c": "int f(int a) {\n  return a;\n}\n",
    "cpp": "int f(int a) {\n  return a;\n}\n",
    "lua": "local function f(a)\n  return a\nend\n",
    "ruby": "def f(a)\n  a\nend\n",
    "shellscript": 'f() {\n  echo "$1"\n}\n',
}


@pytest.mark.parametrize("spec", LANGUAGES, ids=lambda s: s.id)
def test_every_language_parses_without_errors(spec):
    tree = parse(spec.id, SOURCES[spec.id].encode())
    assert tree is not None and not tree.root_node.has_error


@pytest.mark.parametrize(
    ("path", "language"),
    [
        ("a.py", "python"),
        ("x/b.tsx", "typescriptreact"),
        ("c.TS", "typescript"),
        ("d.h", "c"),
        ("e.hpp", "cpp"),
        ("f.rb", "ruby"),
        ("g.sh", "shellscript"),
        ("h.lua", "lua"),
        ("README", PLAIN_TEXT),
        ("i.txt", PLAIN_TEXT),
    ],
)
def test_language_for_path(path, language):
    assert language_for_path(path) == language


def test_client_language_id_wins_unless_unknown():
    assert resolve_language("typescriptreact", "a.ts") == "typescriptreact"
    assert resolve_language("bash", "a") == "shellscript"
    assert resolve_language("weird", "a.go") == "go"
    assert grammar(PLAIN_TEXT) is None


# (language, text, edits as (start, end, new text) in characters of the current text)
EDITS = [
    ("python", "def f(a):\n    return a\n", [(22, 22, "\n\ndef g():\n    pass"), (4, 5, "first"), (0, 0, "# é\n")]),
    ("javascript", "function f(a) {\n  return a;\n}\n", [(25, 26, "a + 1"), (0, 0, "const x = 'ü';\n")]),
    ("go", "package m\n\nfunc f() {\n}\n", [(22, 22, "\treturn\n"), (16, 17, "g")]),
    ("rust", "fn f() {}\n", [(8, 8, '\n    let x = "→";\n'), (3, 4, "main")]),
    ("ruby", "def f(a)\n  a\nend\n", [(11, 12, "a * 2"), (0, 0, "class K\n"), (23, 23, "end\n")]),
]


@pytest.mark.parametrize(("language", "text", "edits"), EDITS, ids=[e[0] for e in EDITS])
def test_incremental_reparse_matches_a_fresh_parse(language, text, edits):
    doc = SyntaxTree(language, text)
    for start, end, new in edits:
        prefix = text[:start].encode()
        doc.replace(len(prefix), len(prefix) + len(text[start:end].encode()), new)
        text = text[:start] + new + text[end:]
        assert doc.text == text
        assert str(doc.root) == str(parse(language, text.encode()).root_node)


def test_byte_edit_points_count_bytes_and_rows():
    source = "aé\nbc\n".encode()
    edit = byte_edit(source, 3, 5, b"x\nyz")
    assert edit.start_point == (0, 3)  # 'é' is two bytes
    assert edit.old_end_point == (1, 1)
    assert edit.new_end_point == (1, 2)
    assert edit.new_end_byte == 3 + 4
    assert point_at(source, len(source)) == (2, 0)


def test_edits_outside_the_text_are_refused():
    doc = SyntaxTree("python", "x = 1\n")
    with pytest.raises(ValueError, match="outside"):
        doc.replace(3, 99, "2")
    assert doc.text == "x = 1\n"


def test_plain_text_keeps_text_without_a_tree():
    doc = SyntaxTree(PLAIN_TEXT, "hello\n")
    doc.replace(5, 5, " world")
    assert doc.root is None and doc.text == "hello world\n"
    doc.set_text("new")
    assert doc.text == "new"


def test_enclosing_node_is_the_construct_around_an_offset():
    source = b"def f(a):\n    return a\n"
    node = enclosing_node(parse("python", source).root_node, source.index(b"return"))
    assert node.type in ("block", "function_definition")
    assert node.start_byte < source.index(b"return") < node.end_byte
