"""Turning a raw canvas into the text an editor inserts: cut at special tokens and low-confidence tails, stop where
the syntactic block the completion started in ends, drop what repeats the suffix, balance the brackets the
completion opened, match the document's indentation, and drop what is left too short. Pure: text in, text out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..context.languages import language_spec
from ..context.mode import CompletionMode
from ..context.syntax import enclosing_node, parse

SPECIAL_TOKEN = re.compile(r"<(?:bos|eos|pad|unk|mask)>|<\|[a-z_]+\|?>|<[a-z_]+\|>")
OPENERS, CLOSERS = "([{", ")]}"
PAIRS = dict(zip(CLOSERS, OPENERS, strict=True))
CLOSING_WORDS = frozenset(("}", ")", "]", "end", "fi", "done", "esac", "until"))
PREFIX_WINDOW_CHARS = 2000
SUFFIX_WINDOW_CHARS = 400
_STATEMENT_START = re.compile(r"[A-Za-z_@#]")
_LEADING_SPACE = re.compile(r"\s*")


@dataclass(frozen=True)
class PostprocessOptions:
    """Knobs of post-processing; `indent_unit` comes from the client's formattingOptions when it sends them."""

    min_chars: int = 1  # fewer non-blank characters than this and the completion is dropped
    min_confidence: float = 0.15  # tokens below this end the completion (at a line boundary in block modes)
    indent_unit: str | None = None  # "\t" or N spaces; None: inferred from the document
    stop_sequences: tuple[str, ...] = ()  # the prompt layout's own stops, e.g. a closing code fence


@dataclass(frozen=True)
class Processed:
    """The text to insert (None: show nothing) and the rules that changed it, in order."""

    text: str | None
    rules: tuple[str, ...] = ()


def postprocess(
    completion: str,
    prefix: str,
    suffix: str,
    language: str,
    mode: CompletionMode,
    confidence: Sequence[float] = (),
    token_texts: Sequence[str] | None = None,
    options: PostprocessOptions = PostprocessOptions(),
    healed: str = "",
) -> Processed:
    """Post-process one canvas. `token_texts` (the decoded text of each token, joined = the completion) lets
    `confidence` (one value per token) map onto characters; without it confidence is ignored. `healed` is the
    prompt's token-healing text: the canvas must start with it, and it is removed."""
    rules: list[str] = []
    text = completion if token_texts is None else "".join(token_texts)
    if healed:
        if not text.startswith(healed):
            return Processed(None, ("healing",))
        text = text[len(healed) :]
        token_texts = _without_first_chars(token_texts, len(healed)) if token_texts is not None else None

    def apply(rule: str, new: str) -> None:
        nonlocal text
        if new != text:
            rules.append(rule)
            text = new

    apply("special", cut_at_special(text, options.stop_sequences))
    if token_texts is not None and confidence:
        apply("confidence", cut_low_confidence(text, token_texts, confidence, options.min_confidence, mode))
    if mode is CompletionMode.REST_OF_LINE:
        apply("line", cut_at_line_end(text))
    else:
        cut = cut_at_block_end(text, prefix, suffix, language)
        apply(cut[1], cut[0])
    apply("suffix", drop_suffix_repeats(text, suffix))
    apply("brackets", balance_brackets(text, suffix))
    unit = options.indent_unit or infer_indent_unit(prefix[-1500:] + suffix[:400])
    apply("indent", match_indentation(text, unit))
    apply("trailing", text.rstrip() if "\n" in text or not text.strip() else text)
    if len("".join(text.split())) < options.min_chars:
        return Processed(None, (*rules, "too-short"))
    return Processed(text, tuple(rules))


def _without_first_chars(pieces: Sequence[str], count: int) -> list[str]:
    """Token texts less their first `count` characters, one entry per token still."""
    out = list(pieces)
    for i, piece in enumerate(out):
        if count <= 0:
            break
        out[i] = piece[count:]
        count -= len(piece)
    return out


def cut_at_special(text: str, stops: Sequence[str] = ()) -> str:
    """The text before the first special token (end of sequence, turn markers) or stop sequence."""
    match = SPECIAL_TOKEN.search(text)
    end = match.start() if match else len(text)
    for stop in stops:
        at = text.find(stop, 0, end)
        end = at if at >= 0 else end
    return text[:end]


def token_texts(decode: Callable[[list[int]], str], token_ids: Sequence[int]) -> list[str]:
    """The text each token adds, by decoding growing prefixes (byte-level tokens split characters)."""
    pieces: list[str] = []
    previous = ""
    for n in range(1, len(token_ids) + 1):
        current = decode(list(token_ids[:n]))
        if current.startswith(previous) and not current.endswith("\ufffd"):
            pieces.append(current[len(previous) :])
            previous = current
        else:
            pieces.append("")
    if pieces:
        pieces[-1] += decode(list(token_ids))[len(previous) :]
    return pieces


def cut_low_confidence(
    text: str, pieces: Sequence[str], confidence: Sequence[float], threshold: float, mode: CompletionMode
) -> str:
    """The text before the first token under `threshold`: the whole line it starts on goes in block modes."""
    offset = 0
    for piece, value in zip(pieces, confidence, strict=False):
        if value < threshold and piece.strip():
            if mode is CompletionMode.REST_OF_LINE:
                return text[:offset]
            line_start = text.rfind("\n", 0, offset)
            return text[:line_start] if line_start > 0 else text[:offset]
        offset += len(piece)
    return text


def cut_at_line_end(text: str) -> str:
    """The first line, or more while brackets the completion opened are still open."""
    depth = 0
    for i, ch in enumerate(text):
        if ch in OPENERS:
            depth += 1
        elif ch in CLOSERS:
            depth -= 1
        elif ch == "\n" and depth <= 0 and text[:i].strip():
            return text[:i]
    return text


def cut_at_block_end(text: str, prefix: str, suffix: str, language: str) -> tuple[str, str]:
    """The completion up to the end of the syntactic block it started in, and which rule found it: the syntax
    tree of prefix + completion + suffix where a grammar exists, indentation elsewhere."""
    head = _window_start(prefix)
    prefix_bytes = prefix[head:].encode("utf-8")
    body = text.encode("utf-8")
    tail = suffix[:SUFFIX_WINDOW_CHARS].encode("utf-8")
    tree = parse(language, prefix_bytes + body + tail)
    if tree is not None:
        cursor = len(prefix_bytes)
        node = enclosing_node(tree.root_node, cursor)
        if node is not None and node.parent is not None and not node.has_error and not _inside_error(node):
            if node.end_byte - cursor >= len(body):
                return text, "block"
            closer = _closer(node)
            if closer is not None and closer.end_byte - cursor <= len(body):
                if _next_starts_with(suffix, closer.type):  # the document already closes the block
                    end = min(closer.start_byte, node.end_byte) - cursor
                    return body[:end].decode("utf-8", errors="replace").rstrip(), "block"
                return body[: closer.end_byte - cursor].decode("utf-8", errors="replace"), "block"
            return body[: node.end_byte - cursor].decode("utf-8", errors="replace"), "block"
    return cut_by_indentation(text, prefix, suffix, language), "indent"


def _closer(node: Any) -> Any | None:
    """The token that closes a block (`}`, `end`, `done`...): its own last child, or for a body without one (Lua,
    Ruby, Python-like grammars) its parent's, when only that token follows the body."""
    for owner in (node, node.parent):
        last = owner.children[-1] if owner is not None and owner.children else None
        if (
            last is not None
            and not last.is_named
            and last.type in CLOSING_WORDS
            and (owner is node or last.prev_sibling == node)
        ):
            return last
    return None


def _inside_error(node: Any) -> bool:
    while node is not None:
        if node.is_error:
            return True
        node = node.parent
    return False


def _window_start(prefix: str) -> int:
    """Where the parsed part of the prefix starts: the header line of the block holding the cursor (the nearest
    line above, indented less than the cursor line, that starts a statement), within the window."""
    limit = max(len(prefix) - PREFIX_WINDOW_CHARS, 0)
    line_start = prefix.rfind("\n") + 1
    target = _width(prefix[line_start:]) if not prefix[line_start:].strip() else _width(prefix[line_start:]) + 1
    end = line_start - 1
    while end > limit:
        start = prefix.rfind("\n", 0, end) + 1
        line = prefix[start:end]
        if line.strip() and _width(line) < target and _STATEMENT_START.match(line.lstrip()):
            return start
        end = start - 1
    return limit if limit == 0 else prefix.find("\n", limit) + 1


def cut_by_indentation(text: str, prefix: str, suffix: str, language: str) -> str:
    """The completion up to the first line indented less than the block it started in."""
    current_line = prefix[prefix.rfind("\n") + 1 :]
    lines = text.split("\n")
    if current_line.strip():
        level = _width(current_line)
    else:
        level = _width(current_line + lines[0]) if lines[0].strip() else _width(current_line)
    closers = language_spec(language).block_closers
    kept = [lines[0]]
    for line in lines[1:]:
        if line.strip() and _width(line) < level:
            word = line.strip().split()[0]
            if any(word.startswith(c) for c in closers) and not _next_starts_with(suffix, word):
                kept.append(line)
            break
        kept.append(line)
    return "\n".join(kept).rstrip() if len(kept) < len(lines) else text


def _width(line: str) -> int:
    expanded = line.expandtabs(4)
    return len(expanded) - len(expanded.lstrip())


def drop_suffix_repeats(text: str, suffix: str) -> str:
    """Without trailing lines the suffix already starts with, or (on one line) the rest of the cursor line."""
    line_rest = _first_line(suffix).strip()
    lines = text.split("\n")
    if len(lines) == 1:
        stripped = text.rstrip()
        if line_rest and stripped.endswith(line_rest) and len(stripped) > len(line_rest):
            return stripped[: -len(line_rest)]
        return text
    suffix_lines = _nonblank_lines(suffix, len(lines))
    for k in range(min(len(lines) - 1, len(suffix_lines)), 0, -1):
        tail = [s.rstrip() for s in lines[-k:] if s.strip()]
        if tail and tail == suffix_lines[: len(tail)] and lines[-k].strip():
            return "\n".join(lines[:-k]).rstrip()
    return text


def _first_line(text: str) -> str:
    end = text.find("\n")
    return text if end < 0 else text[:end]


def _nonblank_lines(text: str, count: int) -> list[str]:
    """The first `count` non-blank lines of `text`, right-stripped; reads no further (the suffix is the rest of the
    document, up to megabytes)."""
    found: list[str] = []
    start = 0
    while len(found) < count and start <= len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        if text[start:end].strip():
            found.append(text[start:end].rstrip())
        start = end + 1
    return found


def _next_starts_with(text: str, word: str) -> bool:
    """Whether `text` starts with `word` after its leading whitespace, without copying the rest of `text`."""
    start = _LEADING_SPACE.match(text)
    return text.startswith(word, start.end() if start else 0)


def balance_brackets(text: str, suffix: str) -> str:
    """Close brackets the completion opened on its last line and left open, unless the suffix closes them; drop
    trailing closers of brackets opened before the completion when the suffix already has them."""
    stack: list[tuple[str, int]] = []
    foreign_tail = 0
    line = 0
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
            continue
        if ch in "\"'`":
            quote = ch
        elif ch == "\n":
            line += 1
        elif ch in OPENERS:
            stack.append((ch, line))
            foreign_tail = 0
        elif ch in CLOSERS:
            if stack and stack[-1][0] == PAIRS[ch]:
                stack.pop()
            elif not stack:
                foreign_tail = len(text) - i
                continue
        if not ch.isspace() and ch not in CLOSERS:
            foreign_tail = 0
    if foreign_tail:
        closers = "".join(c for c in text[-foreign_tail:] if not c.isspace())
        if _next_starts_with(suffix, closers):
            return text[: len(text) - foreign_tail].rstrip()
    line_rest = _first_line(suffix).strip()
    missing = "".join(dict(zip(OPENERS, CLOSERS, strict=True))[o] for o, at in reversed(stack) if at == line)
    if missing and len(stack) == len([s for s in stack if s[1] == line]) and not line_rest.startswith(missing):
        return text.rstrip() + missing
    return text


def infer_indent_unit(text: str) -> str:
    """The indentation unit of the text around the cursor: a tab when most of the nearest indented lines start with
    one, else the most common step between the indents of adjacent lines."""
    tabs = spaces = 0
    steps: dict[int, int] = {}
    previous = 0
    for line in text.split("\n"):
        if not line.strip():
            continue
        lead = line[: len(line) - len(line.lstrip())]
        tabs += lead.startswith("\t")
        spaces += lead.startswith(" ")
        width = len(lead.expandtabs(4))
        if width > previous and not lead.startswith("\t"):
            steps[width - previous] = steps.get(width - previous, 0) + 1
        previous = width
    nearest = [line[:1] for line in text.split("\n") if line[:1] in (" ", "\t") and line.strip()][-10:]
    if nearest.count("\t") * 2 > len(nearest) or (not nearest and tabs > spaces):
        return "\t"
    common = [s for s in sorted(steps, key=steps.__getitem__, reverse=True) if s in (2, 3, 4, 8)]
    return " " * (common[0] if common else 4)


def indent_unit(tab_size: int, insert_spaces: bool) -> str:
    """The indentation unit of an LSP formattingOptions."""
    return " " * max(tab_size, 1) if insert_spaces else "\t"


def match_indentation(text: str, unit: str) -> str:
    """The completion with tabs turned into `unit` spaces, or runs of spaces into tabs, to match the document."""
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    widths = [_lead(line) for line in lines[1:] if line.strip()]
    if unit == "\t":
        space_leads = [len(w) for w in widths if w.startswith(" ")]
        if not space_leads:
            return text
        step = min((w for w in space_leads if w), default=4)
        step = step if step in (2, 3, 4, 8) else 4
        return "\n".join(
            [lines[0]]
            + [
                "\t" * (len(_lead(line)) // step) + " " * (len(_lead(line)) % step) + line.lstrip(" ")
                if _lead(line).startswith(" ")
                else line
                for line in lines[1:]
            ]
        )
    if not any("\t" in w for w in widths):
        return text
    return "\n".join([lines[0]] + [_lead(line).replace("\t", unit) + line.lstrip(" \t") for line in lines[1:]])


def _lead(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]
