"""The training files as one token stream: each file's tokens, its prompt header in the layout of
`engine.prompt.layout`, and its completion spans mapped from characters to token boundaries the way token healing cuts
a prompt (the token under the cursor is dropped from the prompt and re-created by the canvas).
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

import numpy as np

from ..prompt.layout import PromptParts, encode_prompt
from .corpus import SourceFile
from .spans import SpanKind, file_spans

KIND_MIX = {SpanKind.LINE: 0.35, SpanKind.LINES: 0.2, SpanKind.BLOCK: 0.25, SpanKind.SPAN: 0.2}


@dataclass(frozen=True)
class TokenizedCorpus:
    """Token ids of all training files back to back, with per-file headers and the completion spans."""

    tokens: np.ndarray  # int32 [n_tokens]
    file_start: np.ndarray  # int64 [files]
    file_end: np.ndarray  # int64 [files]
    headers: np.ndarray  # int32 [files, max_header]: <bos><|file|>path<|language|>lang<|context|><|suffix|>
    header_len: np.ndarray  # int64 [files]
    context_headers: np.ndarray  # int32 [files, max_context_header]: the same with the file's cross-file context
    context_header_len: np.ndarray  # int64 [files]: 0 where the file has no context
    span_file: np.ndarray  # int64 [spans]
    span_cursor: np.ndarray  # int64 [spans]: first canvas token (global index)
    span_end: np.ndarray  # int64 [spans]: first suffix token (global index)
    span_kind: np.ndarray  # int8 [spans]

    @property
    def n_tokens(self) -> int:
        return int(self.tokens.shape[0])


def header_ids(tokenizer: Any, path: str, language: str, context: str = "", max_context_tokens: int = 96) -> list[int]:
    """The prompt up to where the suffix goes, by the one prompt builder (so training and serving agree), with
    the context cut from the right to `max_context_tokens` as the server's prompt budget would cut it."""
    plain = encode_prompt(tokenizer, PromptParts(path=path, language=language, prefix="", suffix="")).ids
    parts = PromptParts(path=path, language=language, prefix="", suffix="", context=context)
    ids = encode_prompt(tokenizer, parts, max_tokens=len(plain) + max_context_tokens).ids
    return list(ids[:-1])  # drop <|prefix|>: the suffix tokens go before it


def token_spans(starts: np.ndarray, cursors: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Character spans to token spans: the canvas starts at the token the cursor is in or right after (token
    healing drops it from the prompt), and ends before the first token that starts at or after `end`."""
    first = np.searchsorted(starts, cursors, side="left") - 1
    last = np.searchsorted(starts, ends, side="left")
    return first, last


def _encode_chunk(
    job: tuple[str, list[str], list[str], int],
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Worker: token ids and token spans of a chunk of files."""
    from tokenizers import Tokenizer

    tokenizer_json, texts, languages, seed = job
    backend = Tokenizer.from_str(tokenizer_json)
    rng = random.Random(seed)
    out = []
    for text, language, encoding in zip(
        texts, languages, backend.encode_batch(texts, add_special_tokens=False), strict=True
    ):
        ids = np.asarray(encoding.ids, dtype=np.int32)
        starts = np.fromiter((o[0] for o in encoding.offsets), dtype=np.int64, count=len(ids))
        spans = file_spans(text, language, rng)
        cursors = np.array([s.cursor for s in spans], dtype=np.int64)
        ends = np.array([s.end for s in spans], dtype=np.int64)
        kinds = np.array([int(s.kind) for s in spans], dtype=np.int8)
        first, last = token_spans(starts, cursors, ends)
        keep = (first >= 0) & (last > first)
        out.append((ids, first[keep], last[keep], kinds[keep]))
    return out


def tokenize_corpus(
    tokenizer: Any,
    files: Sequence[SourceFile],
    seed: int = 0,
    workers: int | None = None,
    chunk_files: int = 200,
    contexts: Sequence[str] | None = None,
) -> TokenizedCorpus:
    """Tokenize `files` in parallel and collect their spans, resampled to the KIND_MIX proportions; `contexts`
    (one per file, "" for none) go into a second header per file."""
    backend = tokenizer.backend_tokenizer
    tokenizer_json = backend.to_str()
    jobs = [
        (
            tokenizer_json,
            [f.text for f in files[i : i + chunk_files]],
            [f.language for f in files[i : i + chunk_files]],
            seed + i,
        )
        for i in range(0, len(files), chunk_files)
    ]
    workers = workers or max(1, min(len(jobs), (os.cpu_count() or 1)))
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    if workers == 1:
        results = [r for job in jobs for r in _encode_chunk(job)]
    else:
        with get_context("spawn").Pool(workers) as pool:
            results = [r for chunk in pool.imap(_encode_chunk, jobs) for r in chunk]
    lengths = np.array([len(r[0]) for r in results], dtype=np.int64)
    file_start = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    tokens = np.concatenate([r[0] for r in results]) if results else np.zeros(0, dtype=np.int32)
    span_file = np.concatenate([np.full(len(r[1]), i, dtype=np.int64) for i, r in enumerate(results)])
    span_cursor = np.concatenate([r[1] + file_start[i] for i, r in enumerate(results)])
    span_end = np.concatenate([r[2] + file_start[i] for i, r in enumerate(results)])
    span_kind = np.concatenate([r[3] for r in results])
    heads = [header_ids(tokenizer, f.path, f.language) for f in files]
    contexts = contexts or [""] * len(files)
    context_heads = [
        header_ids(tokenizer, f.path, f.language, context) if context else []
        for f, context in zip(files, contexts, strict=True)
    ]
    order = resampled(span_kind, np.random.default_rng(seed))
    return TokenizedCorpus(
        tokens=tokens,
        file_start=file_start,
        file_end=file_start + lengths,
        headers=_padded(heads),
        header_len=np.array([len(h) for h in heads], dtype=np.int64),
        context_headers=_padded(context_heads),
        context_header_len=np.array([len(h) for h in context_heads], dtype=np.int64),
        span_file=span_file[order],
        span_cursor=span_cursor[order],
        span_end=span_end[order],
        span_kind=span_kind[order],
    )


def _padded(rows: Sequence[list[int]]) -> np.ndarray:
    out = np.zeros((len(rows), max(1, *map(len, rows))), dtype=np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def resampled(kinds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of spans drawn so that the kinds follow KIND_MIX (as many spans as there are in all)."""
    total = len(kinds)
    picks = []
    for kind, share in KIND_MIX.items():
        pool = np.flatnonzero(kinds == int(kind))
        if len(pool):
            picks.append(rng.choice(pool, size=int(total * share), replace=True))
    order = np.concatenate(picks) if picks else np.arange(total)
    rng.shuffle(order)
    return order
