"""Post-processing: block ends, suffix repeats, brackets, indentation, special tokens, confidence, short results."""

from __future__ import annotations

import pytest

from diffusion_copilot.server.completion.fit import indent_unit, infer_indent_unit
from diffusion_copilot.server.completion.postprocess import PostprocessOptions, cut_at_special, postprocess, token_texts
from diffusion_copilot.server.context.mode import CompletionMode

LINE, LINES, BODY = CompletionMode.REST_OF_LINE, CompletionMode.NEXT_LINES, CompletionMode.WHOLE_BODY

# (name, language, mode, prefix, raw completion, suffix, expected text)
CASES = [
    (
        "python body stops at dedent",
        "python",
        BODY,
        "def f(x):\n    ",
        "y = x + 1\n    return y\n\ndef g():\n    pass",
        "\n\ndef g():\n    pass\n",
        "y = x + 1\n    return y",
    ),
    (
        "python lines stop at the end of the if block",
        "python",
        LINES,
        "def f(x):\n    if x:\n        y = 1",
        "\n        z = 2\n    return y\n",
        "\n    return 0\n",
        "\n        z = 2",
    ),
    (
        "c body leaves the closing brace to the suffix",
        "c",
        BODY,
        "int f(int x) {\n    ",
        "int y = x;\n    return y;\n}\n\nint g(void) {",
        "\n}\n",
        "int y = x;\n    return y;",
    ),
    (
        "c body without suffix keeps its brace",
        "c",
        BODY,
        "int f(int x) {\n    ",
        "return x;\n}\n\nint g(void) {",
        "",
        "return x;\n}",
    ),
    (
        "ruby body leaves end to the suffix",
        "ruby",
        BODY,
        "def f(x)\n  ",
        "x * 2\nend\n\ndef g\nend",
        "\nend\n",
        "x * 2",
    ),
    (
        "lua body adds end when the document has none",
        "lua",
        BODY,
        "local function f(a)\n  ",
        "return a\nend\nlocal b = 1",
        "",
        "return a\nend",
    ),
    (
        "go nested block",
        "go",
        LINES,
        "func f() {\n\tfor i := 0; i < 3; i++ {\n\t\tx := i",
        "\n\t\tuse(x)\n\t}\n\treturn\n}",
        "\n\t}\n}\n",
        "\n\t\tuse(x)",
    ),
    (
        "no grammar: indentation ends the block",
        "plaintext",
        BODY,
        "section:\n    ",
        "item one\n    item two\nnext section:\n    other",
        "\n",
        "item one\n    item two",
    ),
    ("rest of line stops at the newline", "python", LINE, "x = foo(", "a, b)\ny = 2", "\n", "a, b)"),
    (
        "rest of line keeps brackets it opened across lines",
        "python",
        LINE,
        "x = ",
        "foo(\n    a,\n)\ny = 2",
        "\n",
        "foo(\n    a,\n)",
    ),
    ("closer repeated from the suffix is dropped", "python", LINE, "x = foo(", "a, b)", ")\n", "a, b"),
    (
        "trailing lines repeated from the suffix are dropped",
        "python",
        LINES,
        "def f():\n    a = 1",
        "\n    b = 2\n    return a + b",
        "\n    return a + b\n",
        "\n    b = 2",
    ),
    (
        "bracket opened on the last line is closed",
        "javascript",
        LINE,
        "const x = ",
        "foo(a, [1, 2]",
        "\n",
        "foo(a, [1, 2])",
    ),
    (
        "bracket closed by the auto-closed suffix is left alone",
        "javascript",
        LINE,
        "const x = ",
        "foo(a",
        ")\n",
        "foo(a",
    ),
    ("special tokens end the text", "python", LINE, "x = ", "1<eos>junk", "\n", "1"),
    ("gemma turn markers end the text", "python", LINE, "x = ", "2<turn|>", "\n", "2"),
    ("empty result is dropped", "python", LINES, "x = 1", "\n\n   \n", "\n", None),
    ("whitespace-only result is dropped", "python", LINE, "x = ", "   ", "\n", None),
]


@pytest.mark.parametrize(
    ("name", "language", "mode", "prefix", "raw", "suffix", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_postprocess(name, language, mode, prefix, raw, suffix, expected):
    assert postprocess(raw, prefix, suffix, language, mode).text == expected


def test_too_short_results_are_dropped():
    options = PostprocessOptions(min_chars=3)
    assert postprocess("ab", "x = ", "\n", "python", LINE, options=options).text is None
    assert postprocess("abc", "x = ", "\n", "python", LINE, options=options).text == "abc"


def test_stop_sequences_of_the_layout_end_the_text():
    options = PostprocessOptions(stop_sequences=("\n```",))
    result = postprocess("return 1\n```\nmore", "def f():\n    ", "\n", "python", BODY, options=options)
    assert result.text == "return 1" and "special" in result.rules


def test_low_confidence_tail_is_cut_at_a_line_boundary():
    pieces = ["y", " = ", "1", "\n    ", "z", " = ", "2"]
    confidence = [0.9, 0.9, 0.9, 0.9, 0.05, 0.9, 0.9]
    result = postprocess("", "def f():\n    ", "\n", "python", BODY, confidence, pieces)
    assert result.text == "y = 1" and "confidence" in result.rules


def test_low_confidence_in_a_line_completion_cuts_at_the_token():
    pieces = ["foo", "(", "bar", ")"]
    result = postprocess("", "x = ", "\n", "python", LINE, [0.9, 0.9, 0.1, 0.9], pieces)
    assert result.text == "foo()"  # the bracket the completion opened is closed


def test_indentation_follows_a_tab_indented_document():
    prefix = "func f() {\n\tx := 1\n\t"
    raw = "if x > 0 {\n        y := 2\n    }"
    result = postprocess(raw, prefix, "\n}\n", "plaintext", LINES, options=PostprocessOptions(indent_unit="\t"))
    assert result.text == "if x > 0 {\n\t\ty := 2\n\t}"


def test_indentation_follows_a_space_indented_document():
    result = postprocess(
        "if x:\n\t\ty = 2", "def f(x):\n    ", "\n", "plaintext", BODY, options=PostprocessOptions(indent_unit="    ")
    )
    assert result.text == "if x:\n        y = 2"


@pytest.mark.parametrize(
    ("text", "unit"),
    [("a\n    b\n        c\n", "    "), ("a\n  b\n    c\n", "  "), ("a\n\tb\n\t\tc\n", "\t"), ("a\nb\n", "    ")],
)
def test_infer_indent_unit(text, unit):
    assert infer_indent_unit(text) == unit


def test_indent_unit_from_formatting_options():
    assert indent_unit(2, True) == "  " and indent_unit(4, False) == "\t"


def test_token_texts_split_multibyte_characters_correctly():
    text = "é→x"
    data = text.encode()
    ids = list(data)  # one token per byte, like a byte-level tokenizer

    def decode(tokens: list[int]) -> str:
        return bytes(tokens).decode("utf-8", errors="replace")

    pieces = token_texts(decode, ids)
    assert "".join(pieces) == text and len(pieces) == len(ids)


def test_cut_at_special_keeps_code_that_looks_like_markup():
    assert cut_at_special("<div>x</div><|turn>") == "<div>x</div>"


def test_healed_text_is_required_and_removed_with_its_confidence():
    pieces = ["    ret", "urn", " x", "\n", "junk"]
    confidence = [0.9, 0.9, 0.9, 0.9, 0.01]
    result = postprocess("", "def f(x):\n", "\n", "python", BODY, confidence, pieces, healed="    re")
    assert result.text == "turn x"
    assert postprocess("pass", "def f(x):\n", "\n", "python", BODY, healed="    re").text is None


def test_the_engines_token_texts_are_the_texts_of_growing_prefixes():
    """The engine sends each token's span (engine/prompt/detokenize.py, linear); it must equal what decoding growing
    prefixes gives (`token_texts` here, quadratic), on the default model's byte-level tokenizer: split characters,
    a lone continuation byte, pads the decoder skips."""
    from transformers import AutoTokenizer

    from diffusion_copilot.engine import token_texts as engine_token_texts
    from diffusion_copilot.engine.weights.default_model import shipped_model_dir

    tokenizer = AutoTokenizer.from_pretrained(shipped_model_dir())

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=True)

    def ids(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    lone_byte = [i for i in ids("日本") if decode([i]) == "\ufffd"][:1]
    assert lone_byte  # the tokenizer splits these characters into bytes
    canvas = ids('def f(naïve: str) -> str:\n    return "日本語 🎉" + naïve') + lone_byte + ids("x\n") + [0, 0, 0]
    for end in range(1, len(canvas) + 1):
        text = decode(canvas[:end])
        pieces = engine_token_texts(decode, canvas[:end], text)
        assert list(pieces) == token_texts(decode, canvas[:end]) and "".join(pieces) == text, end
    assert engine_token_texts(decode, canvas, "other text") == ()
