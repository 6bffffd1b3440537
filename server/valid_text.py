"""Text from outside made valid Unicode where it enters (language-server messages, API bodies): lone surrogates,
which JSON can escape (`"\\ud800"`) but UTF-8 cannot encode, become U+FFFD, and invalid UTF-8 bytes are decoded
with replacement. Positions stay right: U+FFFD is one code point and one UTF-16 code unit, like a lone surrogate.
Nothing past the edges checks text again.
"""

from __future__ import annotations

import re
from typing import Any

SURROGATE = re.compile("[\ud800-\udfff]")


def valid_text(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD (`text` itself when it has none)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return SURROGATE.sub("\ufffd", text)
    return text


def valid_json(value: Any) -> Any:
    """A parsed JSON value with every string in it, keys included, made valid text."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, dict):
        return {valid_text(k) if isinstance(k, str) else k: valid_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [valid_json(v) for v in value]
    return value


def text_of(data: bytes) -> str:
    """UTF-8 bytes as text, each invalid sequence replaced by U+FFFD."""
    return data.decode("utf-8", errors="replace")
