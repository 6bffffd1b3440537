"""Prefill: the causal encoder writes the prompt's KV cache (reusing a cached prefix where one matches), alone or
for several prompts in one pass, and commits finished canvases to a cache. No denoising here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import torch

from ...hf_internals import output_cache, with_cache
from ...job import Job
from ...kernels.cuda_graphs import PAD_TOKEN
from .prefix_cache import PrefixCache, empty_cache, row_of, snapshot, start_recording, stop_recording

log = logging.getLogger(__name__)


class Prefill:
    """Encodes prompts for one loaded `DiffusionGemmaForBlockDiffusion`, storing prefix snapshots as it goes."""

    def __init__(self, model: Any, prefix_cache: PrefixCache | None = None, together: bool = False) -> None:
        self.model = model
        self.prefix_cache = prefix_cache
        self.is_together = together  # batched jobs encode their unknown prompts in one pass
        self.device = model.device

    def one(self, prompt_ids: tuple[int, ...], batch: int) -> tuple[Any, int]:
        """Encode the prompt once (reusing a cached prefix where one matches) and share it across the batch;
        returns the cache and how many prompt tokens came from the prefix cache."""
        prefix_cache = self.prefix_cache
        cache: Any
        cache, cached = (None, 0) if prefix_cache is None else prefix_cache.lookup(prompt_ids)
        split = cached if prefix_cache is None else prefix_cache.snapshot_length(len(prompt_ids), cached)
        if len(prompt_ids) > cached:
            # One encoder pass for all new tokens (each eager pass costs ~100 ms of launches on the full model):
            # the snapshot behind the end is cut from the states that pass recorded.
            if split > cached:
                cache = cache if cache is not None else empty_cache(self.model.config.get_text_config())
                start_recording(cache)
            ids = torch.tensor([prompt_ids[cached:]], dtype=torch.long, device=self.device)
            cache = self.encode(ids, cache, cached)
            if prefix_cache is not None and split > cached:
                prefix_cache.store(prompt_ids[:split], snapshot(cache, len(prompt_ids) - split))
                stop_recording(cache)
        if batch > 1:
            cache.batch_repeat_interleave(batch)
        return cache, cached

    def together(self, prompts: list[tuple[int, ...]]) -> list[Any]:
        """Encode several prompts in one pass and return each one's cache as `one` would make it alone from
        nothing (storing its prefix snapshot too). Rows are padded at the end: causal attention never lets a token
        see the padding after it, and each row keeps only its own tokens."""
        longest = max(len(prompt) for prompt in prompts)
        ids = torch.full((len(prompts), longest), PAD_TOKEN, dtype=torch.long)  # any id: no real token sees it
        for row, prompt in enumerate(prompts):
            ids[row, : len(prompt)] = torch.tensor(prompt, dtype=torch.long)
        positions = torch.arange(longest, dtype=torch.int32, device=self.device)[None].expand(len(prompts), -1)
        together = empty_cache(self.model.config.get_text_config())
        start_recording(together)  # sliding layers keep every state, so that each row can cut its own window
        self.model.model.encoder(
            input_ids=ids.to(self.device), position_ids=positions, use_cache=True, **with_cache(together)
        )
        caches = []
        for row, prompt in enumerate(prompts):
            cache = row_of(together, row, len(prompt))
            if self.prefix_cache is not None:
                split = self.prefix_cache.snapshot_length(len(prompt), 0)
                if split > 0:
                    self.prefix_cache.store(prompt[:split], snapshot(cache, len(prompt) - split))
            stop_recording(cache)
            caches.append(cache)
        return caches

    def all(self, jobs: Sequence[Job]) -> list[tuple[Any, int, float]]:
        """Each job's prompt cache (one row per alternative), how many of its tokens came from the prefix cache,
        and the milliseconds its prefill took. With `is_together`, prompts the prefix cache knows nothing of are
        encoded together in one pass (the weights are read and the kernels launched once for all of them); the
        others extend their cached prefix alone."""
        cache_of = self.prefix_cache
        cold = [i for i, job in enumerate(jobs) if job.prompt_ids and not (cache_of and cache_of.knows(job.prompt_ids))]
        prefills: dict[int, tuple[Any, int, float]] = {}
        if self.is_together and len(cold) > 1:
            start = time.perf_counter()
            try:
                caches = self.together([jobs[i].prompt_ids for i in cold])
            except torch.cuda.OutOfMemoryError:
                log.warning("no memory to encode %d prompts together: encoding them one at a time", len(cold))
                torch.cuda.empty_cache()
            else:
                elapsed_ms = (time.perf_counter() - start) * 1000
                for i, cache in zip(cold, caches, strict=True):
                    if jobs[i].alternatives > 1:
                        cache.batch_repeat_interleave(jobs[i].alternatives)
                    prefills[i] = (cache, 0, elapsed_ms)
        for i, job in enumerate(jobs):
            if i not in prefills:
                start = time.perf_counter()
                cache, cached = self.one(job.prompt_ids, job.alternatives)
                prefills[i] = (cache, cached, (time.perf_counter() - start) * 1000)
        return [prefills[i] for i in range(len(jobs))]

    def encode(self, input_ids: torch.Tensor, cache: Any, start: int) -> Any:
        """Run the causal encoder over `input_ids` [batch, tokens] at positions start.., writing the KV cache."""
        positions = torch.arange(start, start + input_ids.shape[1], dtype=torch.int32, device=self.device)[None]
        out = self.model.model.encoder(input_ids=input_ids, position_ids=positions, use_cache=True, **with_cache(cache))
        return output_cache(out)
