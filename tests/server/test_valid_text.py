"""Text made valid where it enters: lone surrogates become U+FFFD without moving any position."""

from __future__ import annotations

import pytest

from diffusion_copilot.server.valid_text import text_of, valid_json, valid_text


@pytest.mark.parametrize("text", ["a\ud800b", "\udc00", "x\udc00\ud800y", "\ud83d", "ok 😀", ""])
def test_lone_surrogates_become_replacement_characters_of_the_same_length(text: str) -> None:
    valid = valid_text(text)
    valid.encode("utf-8")  # encodable: tree-sitter and the tokenizer can take it
    assert len(valid) == len(text)  # code points (utf-32 positions)
    assert len(valid.encode("utf-16-le")) == len(text.encode("utf-16-le", "surrogatepass"))  # utf-16 positions
    assert valid.replace("\ufffd", "") == "".join(c for c in text if not 0xD800 <= ord(c) <= 0xDFFF)


def test_every_string_of_a_json_value_is_made_valid() -> None:
    value = {"a\ud800": ["\udc00", 1, None, {"b": "\ud800c"}], "n": 2.5}
    assert valid_json(value) == {"a\ufffd": ["\ufffd", 1, None, {"b": "\ufffdc"}], "n": 2.5}


def test_invalid_utf8_is_decoded_with_replacement() -> None:
    assert text_of(b"caf\xe9 \xf0\x9f\x98\x80") == "caf\ufffd \U0001f600"
