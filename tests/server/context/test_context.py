"""Context: completion modes, windows at syntactic boundaries, cross-file definitions, recent edits, time budget."""

from __future__ import annotations

import pytest

from diffusion_copilot.server.context.budget import ContextBudget
from diffusion_copilot.server.context.build import build_context, prefix_start
from diffusion_copilot.server.context.cross_file import RecentEdit, rank_recent_edits, render_context
from diffusion_copilot.server.context.definitions import extract_definitions
from diffusion_copilot.server.context.imports import imported_paths
from diffusion_copilot.server.context.mode import PLANS, CompletionMode, completion_mode
from diffusion_copilot.server.context.symbols import WorkspaceIndex
from diffusion_copilot.server.context.syntax import SyntaxTree

LINE, LINES, BODY = CompletionMode.REST_OF_LINE, CompletionMode.NEXT_LINES, CompletionMode.WHOLE_BODY

# (language, text with the cursor at "‸", mode)
MODES = [
    ("python", "def f(x):\n    ‸\n", BODY),
    ("python", "def f(x):‸\n", BODY),
    ("python", "def f(x):\n    y = 1\n    ‸\n", LINES),
    ("python", "def f(x):\n    y = 1‸\n", LINES),
    ("python", "def f(x):\n    y = foo(‸)\n", LINE),
    ("python", "def f(x):\n    y = foo(‸\n", LINE),
    ("python", "def f(x):\n    y = x.‸\n", LINE),
    ("python", "def f(x):\n    y = x +‸\n", LINE),
    ("python", "def f(x):\n    return sel‸\n", LINES),
    ("python", "def f(x):\n    return (sel‸\n", LINE),
    ("python", "# a comm‸ent\n", LINE),
    ("python", "s = 'abc‸'\n", LINE),
    ("python", "if x:\n    pass\n‸", LINES),
    ("javascript", "function f(a) {\n  ‸\n}\n", BODY),
    ("javascript", "function f(a) {\n  let b = 1;\n  ‸\n}\n", LINES),
    ("javascript", "const x = [1, ‸];\n", LINE),
    ("go", "func f() {\n\t‸\n}\n", BODY),
    ("rust", "fn f() -> i32 {\n    ‸\n}\n", BODY),
    ("c", "int f(void) {\n  ‸\n}\n", BODY),
    ("lua", "if x then\n  ‸\nend\n", BODY),
    ("ruby", "[1].each do |x|\n  ‸\nend\n", BODY),
    ("shellscript", "for i in 1 2; do\n  ‸\ndone\n", BODY),
    ("plaintext", "hello ‸world\n", LINE),
]


@pytest.mark.parametrize(("language", "marked", "mode"), MODES, ids=[f"{m[0]}-{i}" for i, m in enumerate(MODES)])
def test_completion_mode(language, marked, mode):
    cursor = marked.index("‸")
    doc = SyntaxTree(language, marked[:cursor] + marked[cursor + 1 :])
    assert completion_mode(doc, len(marked[:cursor].encode())) is mode


def test_each_mode_has_a_canvas_plan_that_grows_with_the_mode():
    assert PLANS[LINE].canvas_length < PLANS[LINES].canvas_length < PLANS[BODY].canvas_length
    assert PLANS[LINE].max_steps <= PLANS[LINES].max_steps <= PLANS[BODY].max_steps


FILE = "".join(f"def f{i}(a):\n    b = a + {i}\n    return b\n\n\n" for i in range(40))


def test_prefix_window_starts_at_a_definition_inside_the_budget():
    doc = SyntaxTree("python", FILE)
    cursor = FILE.index("def f30")
    start = prefix_start(doc, cursor, 200)
    assert cursor - start <= 200
    assert FILE[start:].startswith("def f")


def test_prefix_window_without_a_grammar_starts_on_a_line():
    doc = SyntaxTree("plaintext", FILE)
    start = prefix_start(doc, len(FILE), 100)
    assert FILE[start - 1] == "\n" and len(FILE) - start <= 100


def _index(files: dict[str, str]) -> WorkspaceIndex:
    index = WorkspaceIndex()
    for path, text in files.items():
        index.update(path, "python" if path.endswith(".py") else "go", text.encode())
    return index


HELPERS = (
    'def scale(value, factor=2):\n    """Multiply value by factor."""\n    return value * factor\n\n\n'
    "class Shape:\n    def area(self):\n        return 0\n"
)


def test_cross_file_definitions_of_imported_names_reach_the_prompt():
    main = "from .geometry import scale\n\n\ndef double(x):\n    return scale(x)\n\n\ndef g(y):\n    "
    index = _index({"/w/pkg/geometry.py": HELPERS, "/w/pkg/main.py": main})
    doc = SyntaxTree("python", main)
    context = build_context(doc, "/w/pkg/main.py", len(main.encode()), index)
    assert context.mode is BODY
    assert [d.name for d in context.definitions][:1] == ["scale"]
    assert "def scale(value, factor=2):" in context.prompt.context
    assert "Multiply value by factor." in context.prompt.context
    assert context.prompt.prefix == main and context.prompt.language == "python"
    assert context.is_complete


def test_names_near_the_cursor_find_definitions_in_neighbouring_files():
    index = _index(
        {
            "/w/a/shapes.go": "package a\n\n// Area of a circle.\nfunc Area(r float64) float64 {\n"
            "\treturn 3.14 * r * r\n}\n"
        }
    )
    text = "package a\n\nfunc total(r float64) float64 {\n\treturn Area(r)\n}\n"
    doc = SyntaxTree("go", text)
    context = build_context(doc, "/w/a/main.go", len(text.encode()), index)
    assert "// Area of a circle.\nfunc Area(r float64) float64" in context.prompt.context


def test_definitions_respect_their_budget():
    many = "".join(f"def helper_{i}(a, b, c):\n    return a\n\n" for i in range(200))
    main = "from .many import *\n\ndef f():\n    "
    index = _index({"/w/many.py": many})
    doc = SyntaxTree("python", main)
    budget = ContextBudget(definitions_chars=300)
    context = build_context(doc, "/w/main.py", len(main), index, budget=budget)
    assert context.definitions and len(context.prompt.context) <= 300 + 100


def test_gathering_stops_at_the_time_budget_and_says_so():
    ticks = iter(float(t) for t in range(100))
    main = "from .geometry import scale\n\ndef f(x):\n    return scale(x)\n"
    index = _index({"/w/geometry.py": HELPERS})
    context = build_context(
        SyntaxTree("python", main),
        "/w/main.py",
        len(main),
        index,
        budget=ContextBudget(time_budget_ms=500),
        clock=lambda: next(ticks),
    )
    assert not context.is_complete
    assert context.definitions == ()
    assert context.prompt.prefix == main  # the windows are always there


def test_recent_edits_are_ranked_by_similarity():
    recent = [
        RecentEdit("/w/a.py", "print('unrelated banner text')"),
        RecentEdit("/w/b.py", "total = price * quantity + tax"),
        RecentEdit("/w/c.py", "price = lookup(item)"),
    ]
    chosen = rank_recent_edits(recent, "subtotal = price * quantity", max_chars=1000)
    assert [e.path for e in chosen][:2] == ["/w/b.py", "/w/c.py"]
    assert "/w/a.py" not in [e.path for e in chosen]
    assert rank_recent_edits(recent, "price quantity", max_chars=35) == [recent[1]]


def test_render_context_groups_definitions_under_their_file():
    definitions = extract_definitions("python", HELPERS.encode(), "/w/pkg/geometry.py")
    text = render_context("python", definitions, [RecentEdit("/w/pkg/x.py", "x = 1")], "/w/pkg/main.py")
    assert text.startswith("# geometry.py\ndef scale(value, factor=2):")
    assert "# recent edit in x.py\nx = 1" in text


def test_render_context_keeps_the_most_relevant_first_for_the_engine_cuts_the_end():
    late, early = extract_definitions("python", HELPERS.encode(), "/w/pkg/geometry.py")[1::-1]
    text = render_context("python", [late, early], [], "/w/pkg/main.py")
    assert text.index(late.signature) < text.index(early.signature)


def test_files_outside_the_current_folder_are_named_relative_to_it():
    definitions = extract_definitions("python", HELPERS.encode(), "/w/pkg/core/geometry.py")
    assert render_context("python", definitions, [], "/w/pkg/app/main.py").startswith("# ../core/geometry.py\n")


def test_the_context_with_its_file_comments_stays_within_its_budget():
    files = {f"/w/lib/part_{i}/helpers_{i}.py": f"def helper_{i}(a, b):\n    return a\n" for i in range(60)}
    main = "".join(f"from lib.part_{i}.helpers_{i} import helper_{i}\n" for i in range(60)) + "\ndef f():\n    "
    index = _index(files)
    budget = ContextBudget(definitions_chars=600)
    context = build_context(SyntaxTree("python", main), "/w/app/main.py", len(main), index, budget=budget)
    assert len(context.definitions) > 5 and len(context.prompt.context) <= 600


# (language, source, names the definitions query finds)
DEFINITIONS = [
    ("python", "@d\ndef f(a):\n    pass\nclass K:\n    def m(self): ...\n", ["f", "K", "m"]),
    ("javascript", "function f() {}\nclass K { m() {} }\nconst g = () => 1;\n", ["f", "K", "m", "g"]),
    ("typescript", "interface I { x: number }\ntype T = string;\nfunction f(): void {}\n", ["I", "T", "f"]),
    ("go", "package a\nfunc F() {}\nfunc (s *S) M() {}\ntype S struct{}\n", ["F", "M", "S"]),
    ("rust", "fn f() {}\nstruct S;\ntrait T {}\nenum E { A }\n", ["f", "S", "T", "E"]),
    ("java", "class A { A() {} void m() {} }\ninterface I {}\n", ["A", "A", "m", "I"]),
    ("c", "static int *f(int a) { return 0; }\nint g(void);\nstruct S { int x; };\n", ["f", "g", "S"]),
    ("cpp", "class K { void m(); };\nint f() { return 1; }\n", ["K", "m", "f"]),
    ("lua", "local function f() end\nfunction M.g() end\n", ["f", "g"]),
    ("ruby", "module M\n  class K\n    def m; end\n  end\nend\n", ["M", "K", "m"]),
    ("shellscript", "f() { :; }\nfunction g { :; }\n", ["f", "g"]),
]


@pytest.mark.parametrize(("language", "source", "names"), DEFINITIONS, ids=[d[0] for d in DEFINITIONS])
def test_definitions_query(language, source, names):
    assert sorted(d.name for d in extract_definitions(language, source.encode(), "x")) == sorted(names)


KNOWN = [
    "/w/pkg/a.py",
    "/w/pkg/b.py",
    "/w/pkg/sub/__init__.py",
    "/w/pkg/sub/c.py",
    "/w/lib/x.py",
    "/w/src/b.ts",
    "/w/src/util/index.ts",
    "/w/go/a/n.go",
    "/w/go/b/q.go",
    "/w/src/m.h",
    "/w/inc/sub/x.h",
    "/w/src/lib.rs",
    "/w/src/parser.rs",
    "/w/src/ast/mod.rs",
    "/w/lua/vim/lsp/util.lua",
    "/w/rb/helper.rb",
    "/w/sh/common.bash",
    "/w/java/org/x/Util.java",
    "/w/java/org/x/Helper.java",
    "/w/java/org/y/Other.java",
    "/w/bats/lib/bats-core/common.bash",
    "/w/bats/lib/bats-core/tracing.bash",
    "/w/bats/libexec/helper.sh",
    "/w/rt/lua/vim/treesitter/query.lua",
    "/w/rack/lib/rack/utils.rb",
    "/w/rdp/src/hooks/useDayRender/index.ts",
]
IMPORTS = [
    (
        "/w/pkg/a.py",
        "python",
        "from .b import f\nfrom .sub import c\nimport lib.x\n",
        ["/w/pkg/b.py", "/w/pkg/sub/c.py", "/w/pkg/sub/__init__.py", "/w/lib/x.py"],
    ),
    ("/w/pkg/a.py", "python", "from pkg.sub import (\n    c,\n)\n", ["/w/pkg/sub/c.py", "/w/pkg/sub/__init__.py"]),
    (
        "/w/src/a.ts",
        "typescript",
        "import {x} from './b';\nimport u from './util';\n",
        ["/w/src/b.ts", "/w/src/util/index.ts"],
    ),
    ("/w/go/a/m.go", "go", 'package a\nimport "example.com/go/b"\nfunc f() {}\n', ["/w/go/b/q.go", "/w/go/a/n.go"]),
    ("/w/src/m.c", "c", '#include "m.h"\n#include "sub/x.h"\n#include <stdio.h>\n', ["/w/src/m.h", "/w/inc/sub/x.h"]),
    ("/w/src/lib.rs", "rust", "mod parser;\nuse crate::ast::Node;\n", ["/w/src/parser.rs", "/w/src/ast/mod.rs"]),
    ("/w/lua/init.lua", "lua", "local util = require('vim.lsp.util')\n", ["/w/lua/vim/lsp/util.lua"]),
    ("/w/rb/main.rb", "ruby", "require_relative 'helper'\n", ["/w/rb/helper.rb"]),
    ("/w/sh/run.sh", "shellscript", "source ./common.bash\n", ["/w/sh/common.bash"]),
    (
        "/w/java/org/y/Main.java",
        "java",
        "import org.x.Util;\n",
        ["/w/java/org/x/Util.java", "/w/java/org/y/Other.java"],
    ),
    # a wildcard takes the package; a static import or a nested class, the class that holds it
    ("/w/java/Main.java", "java", "import org.x.*;\n", ["/w/java/org/x/Helper.java", "/w/java/org/x/Util.java"]),
    ("/w/java/Main.java", "java", "import static org.x.Util.helper;\n", ["/w/java/org/x/Util.java"]),
    ("/w/java/Main.java", "java", "import org.x.Util.Inner;\n", ["/w/java/org/x/Util.java"]),
    # a sourced path after a variable is some file with that tail; shellcheck's directive names one too
    (
        "/w/bats/libexec/bats",
        "shellscript",
        'source "$BATS_ROOT/$BATS_LIBDIR/bats-core/common.bash"\n'
        "# shellcheck source=lib/bats-core/tracing.bash\n"
        '[ -n "$x" ] && . "${BASH_SOURCE%/*}/helper.sh"\n'
        'source "$SETUP_FILE"\n',
        ["/w/bats/lib/bats-core/tracing.bash", "/w/bats/lib/bats-core/common.bash", "/w/bats/libexec/helper.sh"],
    ),
    # a module reached as a global (`vim.treesitter.query`) is a module path too
    ("/w/rt/lua/vim/x.lua", "lua", "local q = vim.treesitter.query.get(1)\n", ["/w/rt/lua/vim/treesitter/query.lua"]),
    # a bare path under a tsconfig `baseUrl` (not a package: `react`, `date-fns/locale`)
    (
        "/w/rdp/src/components/Day.tsx",
        "typescriptreact",
        "import { useRef } from 'react';\nimport { useDayRender } from 'hooks/useDayRender';\n"
        "import { enUS } from 'date-fns/locale';\n",
        ["/w/rdp/src/hooks/useDayRender/index.ts"],
    ),
    (
        "/w/rack/lib/rack.rb",
        "ruby",
        'module Rack\n  autoload :Utils, "rack/utils"\nend\n',
        ["/w/rack/lib/rack/utils.rb"],
    ),
]


@pytest.mark.parametrize(
    ("path", "language", "text", "expected"), IMPORTS, ids=[i[1] + str(n) for n, i in enumerate(IMPORTS)]
)
def test_imports_resolve_to_workspace_files(path, language, text, expected):
    assert imported_paths(path, language, text, KNOWN) == expected


def test_index_forgets_removed_files_and_skips_unchanged_text():
    index = _index({"/w/g.py": HELPERS})
    assert [d.path for d in index.definitions_named("scale")] == ["/w/g.py"]
    index.update("/w/g.py", "python", HELPERS.encode())
    assert index.count_named("scale") == 1
    index.remove("/w/g.py")
    assert list(index.definitions_named("scale")) == [] and "/w/g.py" not in index


def test_index_directory_skips_dependency_folders_and_caches_imports(tmp_path):
    from diffusion_copilot.server.context.symbols import index_directory

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "geometry.py").write_text(HELPERS)
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "dep.js").write_text("function hidden() {}\n")
    (tmp_path / "notes.txt").write_text("plain text\n")
    index = WorkspaceIndex()
    assert index_directory(index, tmp_path) == 1
    assert index.count_named("hidden") == 0
    main = str(tmp_path / "pkg" / "main.py")
    first = index.imports_of(main, "python", "from .geometry import scale\n")
    assert first == [str(tmp_path / "pkg" / "geometry.py")]
    index.update(str(tmp_path / "pkg" / "other.py"), "python", b"def other(): ...\n")
    assert index.imports_of(main, "python", "from .other import other\n") == [str(tmp_path / "pkg" / "other.py")]


def test_budget_scales_with_the_prompt_length():
    small, default = ContextBudget.for_prompt(512), ContextBudget()
    assert ContextBudget.for_prompt(2048) == default
    assert small.prefix_chars * 4 == default.prefix_chars and small.definitions_chars * 4 == default.definitions_chars


# (language of the open file, workspace files, the open file with the cursor at "‸", a signature the context holds):
# what each language reaches without the name being used anywhere in the open file
CROSS_FILE = [
    # a Java class used in the file brings its public methods, not its private ones
    (
        "java",
        {
            "/w/org/x/Parser.java": "package org.x;\n\npublic class Parser {\n  public Node parse(String s) {\n"
            "    return null;\n  }\n\n  private void skip() {}\n}\n"
        },
        "/w/org/y/Main.java",
        "package org.y;\n\nimport org.x.Parser;\n\nclass Main {\n  void run(Parser p) {\n    ‸\n  }\n}\n",
        "  public Node parse(String s)",
    ),
    # the methods a required Ruby file defines inside its module and class
    (
        "ruby",
        {"/w/lib/rack/utils.rb": "module Rack\n  module Utils\n    def escape(s)\n      s\n    end\n  end\nend\n"},
        "/w/lib/rack/app.rb",
        "require_relative 'utils'\n\nmodule Rack\n  class App\n    def call(env)\n      ‸\n    end\n  end\nend\n",
        "    def escape(s)",
    ),
    # a Ruby module reopened in another file, with no require between the two
    (
        "ruby",
        {
            "/w/lib/thor/actions/file_manipulation.rb": "class Thor\n  module Actions\n"
            "    def copy_file(source, *args)\n    end\n  end\nend\n"
        },
        "/w/lib/thor/actions/directory.rb",
        "class Thor\n  module Actions\n    def directory(source)\n      ‸\n    end\n  end\nend\n",
        "    def copy_file(source, *args)",
    ),
    # functions of a script sourced through variables
    (
        "shellscript",
        {"/w/lib/core/common.bash": 'bats_trim() {\n  echo "$1"\n}\n'},
        "/w/libexec/bats-preprocess",
        'source "$BATS_ROOT/$BATS_LIBDIR/core/common.bash"\n\nmain() {\n  ‸\n}\n',
        "bats_trim()",
    ),
    # prototypes of a header that an included header includes
    (
        "c",
        {
            "/w/src/parser.h": '#include "./stack.h"\n\ntypedef struct Parser Parser;\n',
            "/w/src/stack.h": "typedef unsigned StackVersion;\n\nvoid ts_stack_pop(StackVersion v);\n",
        },
        "/w/src/parser.c",
        '#include "./parser.h"\n\nstatic void step(Parser *p) {\n  ‸\n}\n',
        "void ts_stack_pop(StackVersion v);",
    ),
    # a Lua module reached as a global table
    (
        "lua",
        {"/w/lua/vim/treesitter/query.lua": "local M = {}\n\nfunction M.get(lang, name)\nend\n\nreturn M\n"},
        "/w/lua/vim/ui.lua",
        "local function f()\n  local q = vim.treesitter.query\n  ‸\nend\n",
        "function M.get(lang, name)",
    ),
]


@pytest.mark.parametrize(
    ("language", "files", "current", "marked", "signature"),
    CROSS_FILE,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CROSS_FILE)],
)
def test_cross_file_definitions_each_language_reaches(language, files, current, marked, signature):
    index = WorkspaceIndex()
    for path, text in files.items():
        index.update(path, language, text.encode())
    cursor = marked.index("‸")
    text = marked[:cursor] + marked[cursor + 1 :]
    doc = SyntaxTree(language, text)
    index.update(current, language, doc.source, doc.tree)
    context = build_context(doc, current, len(text[:cursor].encode()), index)
    assert signature in [d.signature for d in context.definitions]
    assert "private" not in context.prompt.context


# (source, (name, depth, is a container) of each definition)
NESTING = [
    (
        "ruby",
        "module A\n  class B\n    def m; end\n  end\nend\ndef g; end\n",
        [("A", 0, True), ("B", 1, True), ("m", 2, False), ("g", 0, False)],
    ),
    ("java", "class A {\n  A() {}\n  void m() {}\n}\n", [("A", 0, True), ("A", 1, False), ("m", 1, False)]),
    ("cpp", "struct S {\n  void m();\n};\nint f() { return 0; }\n", [("S", 0, True), ("m", 1, False), ("f", 0, False)]),
    (
        "python",
        "class K:\n    def m(self):\n        def inner(): ...\n",
        [("K", 0, True), ("m", 1, False), ("inner", 2, False)],
    ),
]


@pytest.mark.parametrize(("language", "source", "expected"), NESTING, ids=[n[0] for n in NESTING])
def test_definitions_know_their_nesting(language, source, expected):
    found = extract_definitions(language, source.encode(), "x")
    assert [(d.name, d.depth, d.is_container) for d in found] == expected


def test_members_of_a_class_are_the_definitions_directly_inside_it():
    index = WorkspaceIndex()
    index.update("/w/A.java", "java", b"class A {\n  void m() {}\n  class In {\n    void q() {}\n  }\n}\nclass B {}\n")
    outer, inner = (d for d in index.definitions_in("/w/A.java") if d.name in ("A", "In"))
    assert [d.name for d in index.members_of(outer)] == ["m", "In"]
    assert [d.name for d in index.members_of(inner)] == ["q"]
    assert index.members_of(next(index.definitions_named("m"))) == ()


def test_a_module_that_re_exports_hands_on_what_it_re_exports():
    index = WorkspaceIndex()
    index.update("/w/src/hooks/index.ts", "typescript", b"export * from './useDay';\nexport { f } from './f';\n")
    index.update("/w/src/hooks/useDay.tsx", "typescriptreact", b"export function useDay(): number {\n  return 1;\n}\n")
    index.update("/w/src/hooks/f.ts", "typescript", b"export const f = () => 1;\n")
    found = index.imports_of("/w/src/Day.tsx", "typescriptreact", "import { useDay } from './hooks';\n")
    assert found == ["/w/src/hooks/index.ts", "/w/src/hooks/useDay.tsx", "/w/src/hooks/f.ts"]


def test_included_headers_count_with_what_they_include_and_follow_their_changes():
    index = WorkspaceIndex()
    index.update("/w/a.h", "c", b'#include "b.h"\nint a(void);\n')
    index.update("/w/b.h", "c", b"int b(void);\n")
    index.update("/w/c.h", "c", b"int c(void);\n")
    assert index.imports_of("/w/m.c", "c", '#include "a.h"\n') == ["/w/a.h", "/w/b.h"]
    index.update("/w/a.h", "c", b'#include "c.h"\nint a(void);\n')
    assert index.imports_of("/w/m.c", "c", '#include "a.h"\n') == ["/w/a.h", "/w/c.h"]


# (file name, its first bytes, the language the index reads it as)
FILE_LANGUAGES = [
    ("bats-exec-file", b"#!/usr/bin/env bash\nset -e\n", "shellscript"),
    ("install", b"#!/bin/sh\n", "shellscript"),
    ("tool", b"#!/usr/bin/env -S python3 -u\n", "python"),
    ("README", b"# Title\n", "plaintext"),
    ("notes.txt", b"#!/bin/sh\n", "plaintext"),  # an extension that is not code wins over a shebang
    ("greenlet.h", b"#pragma once\nnamespace greenlet {\nclass Greenlet;\n}\n", "cpp"),
    ("array.h", b"#ifndef ARRAY_H\ntypedef struct { int size; } Array;\n#endif\n", "c"),
]


@pytest.mark.parametrize(("name", "head", "language"), FILE_LANGUAGES, ids=[f[0] for f in FILE_LANGUAGES])
def test_files_without_a_telling_extension_are_read_by_their_content(name, head, language):
    from diffusion_copilot.server.context.languages import language_for_file

    assert language_for_file(name, head) == language


def test_the_index_reads_scripts_named_by_their_shebang(tmp_path):
    (tmp_path / "bats-exec").write_bytes(b"#!/usr/bin/env bash\nbats_run() {\n  :\n}\n")
    (tmp_path / "LICENSE").write_bytes(b"MIT License\n")
    index = WorkspaceIndex()
    assert index.add_file(tmp_path / "bats-exec") and not index.add_file(tmp_path / "LICENSE")
    assert [d.signature for d in index.definitions_named("bats_run")] == ["bats_run()"]
