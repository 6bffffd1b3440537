"""Canvas token ids as the text front ends edit: the ids before the first end-of-sequence token, and the text each
token adds, so that per-token values (confidence) map onto characters.

Torch-free; the decoder is the caller's (`Backend.decode`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

Decode = Callable[[list[int]], str]


def before_eos(token_ids: Sequence[int], eos_ids: Collection[int]) -> list[int]:
    """The ids before the first end-of-sequence token (all of them when there is none)."""
    end = next((i for i, token in enumerate(token_ids) if token in eos_ids), len(token_ids))
    return list(token_ids[:end])


def token_texts(decode: Decode, token_ids: Sequence[int], text: str) -> tuple[str, ...]:
    """The text each token adds to `text` (= `decode(token_ids)`); a character split across byte-level tokens
    belongs to the token that completes it. () when the pieces do not add up to `text`.

    Decodes a few tokens at a time, from the start of the last piece, as streaming detokenizers do: linear in the
    canvas length, and a decoder that treats a leading token specially (a word-start space) treats both sides of
    each difference alike."""
    pieces: list[str] = []
    start = read = 0  # decoded from `start`; the text of tokens before `read` is already in `pieces`
    for end in range(1, len(token_ids) + 1):
        before = decode(list(token_ids[start:read]))
        after = decode(list(token_ids[start:end]))
        if len(after) > len(before) and after.startswith(before) and not after.endswith("\ufffd"):
            pieces.append(after[len(before) :])
            start, read = read, end
        else:
            pieces.append("")
    built = "".join(pieces)
    if not pieces or not text.startswith(built):
        return ()
    pieces[-1] += text[len(built) :]  # an incomplete character at the end of the canvas
    return tuple(pieces)
