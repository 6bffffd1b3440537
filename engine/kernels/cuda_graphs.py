"""CUDA graphs of the decoder's denoising forward: all graph plumbing lives here, so the denoising loop only asks
for a step function per canvas block and calls it like the model.

A graph is captured on first use for each (batch, canvas bucket, prefix bucket) and replayed every step. The
canvas is padded to its bucket; the prompt KV is copied, once per block, into fixed-size buffers; masks hide the
padding. Blocks that fit no bucket, and any graph that fails to capture, run eagerly.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..hf_internals import with_cache

log = logging.getLogger(__name__)

DecoderStep = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
"""(canvas ids [batch, canvas], self-conditioning logits [batch, canvas, vocab] or None) → logits, float32
[batch, canvas, vocab]; a graph's logits stay valid until its next replay."""

PAD_TOKEN = 0  # fills canvas positions past the real canvas; masked out, so any id works


@dataclass(frozen=True)
class GraphBuckets:
    """The static shapes graphs are captured for; larger blocks run eagerly."""

    canvas_lengths: tuple[int, ...] = (16, 32, 64, 128, 256)
    prefix_lengths: tuple[int, ...] = (512, 1024, 2048, 4096)
    max_batch: int = 8  # rows: alternatives of one job, or jobs batched together
    max_graphs: int = 8  # least recently used graphs beyond this are dropped (each holds its logits)


@dataclass(frozen=True)
class _Shape:
    """The static shape of one graph, and how many cached tokens each attention kind holds at most."""

    batch: int
    canvas: int
    prefix: int
    capacity: tuple[tuple[str, int], ...]  # (layer kind, prefix KV slots)


class _PrefixLayer:
    """One layer's prompt K/V in fixed-size buffers, [batch, kv heads, capacity, head dim], and how many slots of
    each row hold tokens (`lengths`, int32 [batch], shared by the layers of one kind)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, lengths: torch.Tensor) -> None:
        self.keys = keys
        self.values = values
        self.lengths = lengths


class StaticPrefix:
    """The prompt KV of every layer in fixed-size buffers. Reads like the cache the decoder attention takes
    (`layers[i].keys`, `.values`, not compileable): the decoder concatenates it with the canvas and never writes.
    `lengths` (per layer kind) and `canvas_len` are device values bound per block, for attention kernels that
    read the buffers in place instead of taking a mask."""

    is_compileable = False

    def __init__(self, layers: list[_PrefixLayer], lengths: dict[str, torch.Tensor], canvas_len: torch.Tensor) -> None:
        self.layers = layers
        self.lengths = lengths
        self.canvas_len = canvas_len  # int32 [1]: the canvas keys that hold tokens (the rest is padding)

    @classmethod
    def like(cls, cache: Any, capacities: list[int], kinds: list[str]) -> StaticPrefix:
        """Zeroed buffers shaped like `cache`'s layers, with `capacities[i]` token slots in layer i of kind
        `kinds[i]`."""
        layers = []
        device = cache.layers[0].keys.device
        batch = cache.layers[0].keys.shape[0]
        lengths = {kind: torch.zeros(batch, dtype=torch.int32, device=device) for kind in set(kinds)}
        for source, capacity, kind in zip(cache.layers, capacities, kinds, strict=True):
            _, heads, _, dim = source.keys.shape
            zeros = torch.zeros((batch, heads, capacity, dim), dtype=source.keys.dtype, device=device)
            layers.append(_PrefixLayer(zeros, torch.zeros_like(zeros), lengths[kind]))
        return cls(layers, lengths, torch.zeros(1, dtype=torch.int32, device=device))

    def copy_from(self, cache: Any) -> None:
        """Copy each layer's cached K/V to the front of its buffer; the rest keeps stale, finite values (masked)."""
        for layer, source in zip(self.layers, cache.layers, strict=True):
            length = source.keys.shape[-2]
            layer.keys[:, :, :length].copy_(source.keys)
            layer.values[:, :, :length].copy_(source.values)


class _StepGraph:
    """Static inputs, masks and logits of one shape, and the graph that recomputes the logits from them."""

    def __init__(self, model: Any, prefix: StaticPrefix, shape: _Shape) -> None:
        device = model.device
        vocab = int(model.config.text_config.vocab_size)
        sc_dtype = model.model.decoder.embed_tokens.weight.dtype
        self.model = model
        self.prefix = prefix
        self.shape = shape
        self.length = shape.canvas
        self.canvas = torch.full((shape.batch, shape.canvas), PAD_TOKEN, dtype=torch.long, device=device)
        self.positions = torch.zeros(shape.batch, shape.canvas, dtype=torch.long, device=device)  # per row
        self.sc_logits = torch.zeros(shape.batch, shape.canvas, vocab, dtype=sc_dtype, device=device)
        self.sc_mask = torch.zeros(shape.batch, dtype=torch.bool, device=device)  # False: no self-conditioning yet
        self.masks = {
            kind: torch.zeros(shape.batch, 1, shape.canvas, slots + shape.canvas, dtype=torch.bool, device=device)
            for kind, slots in shape.capacity
        }  # [batch, 1, canvas, prefix slots + canvas]: True where a query may attend
        self.graph: torch.cuda.CUDAGraph | None = None
        self.logits: torch.Tensor | None = None

    def forward(self) -> torch.Tensor:
        """The model's decoder forward on the static buffers: [batch, canvas bucket, vocab] float32 logits."""
        logits: torch.Tensor = self.model(
            decoder_input_ids=self.canvas,
            self_conditioning_logits=self.sc_logits,
            self_conditioning_mask=self.sc_mask,
            decoder_position_ids=self.positions,
            decoder_attention_mask=self.masks,
            **with_cache(self.prefix),
        ).logits
        return logits

    def capture(self, pool: Any) -> float:
        """Warm up on a side stream (lazy inits, cuBLAS workspaces), then record the forward; returns seconds."""
        start = time.perf_counter()
        stream = torch.cuda.Stream(device=self.canvas.device)  # type: ignore[no-untyped-call]
        stream.wait_stream(torch.cuda.current_stream(self.canvas.device))
        with torch.cuda.stream(stream):
            for _ in range(2):
                self.forward()
        torch.cuda.current_stream(self.canvas.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool):
            self.logits = self.forward()
        self.graph = graph
        torch.cuda.synchronize(self.canvas.device)
        return time.perf_counter() - start

    def bind(
        self,
        cache: Any,
        positions: torch.Tensor,
        lengths: dict[str, int],
        row_lengths: dict[str, list[int]] | None = None,
    ) -> None:
        """Load one block's constants: the prompt KV, the masks and the positions (padding continues them).
        `positions` is [1 or batch, canvas]; `row_lengths` gives each row its own prompt length (batched jobs)."""
        length = positions.shape[-1]
        self.length = length
        self.prefix.copy_from(cache)
        for kind, slots in self.shape.capacity:
            mask = self.masks[kind]
            mask.zero_()
            if row_lengths is None:
                mask[..., : lengths[kind]] = True
                self.prefix.lengths[kind].fill_(lengths[kind])
            else:
                for row, cached in enumerate(row_lengths[kind]):
                    mask[row, ..., :cached] = True
                self.prefix.lengths[kind].copy_(torch.tensor(row_lengths[kind], dtype=torch.int32))
            mask[..., slots : slots + length] = True
        self.prefix.canvas_len.fill_(length)
        self.positions[:, :length].copy_(positions)
        pad = self.shape.canvas - length
        if pad:
            tail = torch.arange(1, pad + 1, device=positions.device, dtype=torch.long)
            self.positions[:, length:].copy_(positions[:, -1:].long() + tail)
            self.canvas[:, length:].fill_(PAD_TOKEN)

    def step(self, canvas: torch.Tensor, sc_logits: torch.Tensor | None) -> torch.Tensor:
        """One denoising forward: logits [batch, canvas, vocab] for the block bound last."""
        length = self.length
        with torch.inference_mode():
            self.canvas[:, :length].copy_(canvas)
            if sc_logits is None:
                self.sc_mask.fill_(False)
            else:
                self.sc_logits[:, :length].copy_(sc_logits)
                self.sc_mask.fill_(True)
            if self.graph is None:
                return self.forward()[:, :length]
            self.graph.replay()
            assert self.logits is not None
            return self.logits[:, :length]


class StepGraphs:
    """Denoising-step forwards over static shapes for one model, as CUDA graphs on a GPU. With `capture=False`
    the same static-shape forward runs eagerly (how the CPU tests check it)."""

    def __init__(self, model: Any, buckets: GraphBuckets | None = None, capture: bool | None = None) -> None:
        self.model = model
        self.buckets = buckets or GraphBuckets()
        self.capture = model.device.type == "cuda" if capture is None else capture
        text = model.config.text_config
        self.layer_kinds: list[str] = list(text.layer_types)
        self.sliding_window = int(text.sliding_window)
        self.graphs: OrderedDict[_Shape, _StepGraph] = OrderedDict()
        self.prefixes: dict[tuple[int, int], StaticPrefix] = {}
        self.failed: set[_Shape] = set()
        self.capture_s: dict[_Shape, float] = {}
        self.pool = torch.cuda.graph_pool_handle() if self.capture else None

    def step_for(
        self, cache: Any, positions: torch.Tensor, batch: int, row_lengths: dict[str, list[int]] | None = None
    ) -> DecoderStep | None:
        """The step function for one canvas block against `cache`, or None when the block must run eagerly.
        With `row_lengths` (cached tokens per layer kind and row), rows hold different prompts, left-aligned."""
        lengths = self._cached_lengths(cache, batch)
        shape = None if lengths is None else self._shape(batch, positions.shape[-1], lengths)
        if shape is None or lengths is None or shape in self.failed:
            return None
        with torch.inference_mode():
            graph = self._graph(shape, cache)
            graph.bind(cache, positions, lengths, row_lengths)
            if self.capture and graph.graph is None and not self._capture(graph):
                return None
        return graph.step

    def clear(self) -> None:
        """Drop every graph and buffer (their memory returns to the allocator)."""
        self.graphs.clear()
        self.prefixes.clear()

    def _graph(self, shape: _Shape, cache: Any) -> _StepGraph:
        """The static buffers of `shape`, made now if they are new (prefix buffers shared across canvas sizes)."""
        if shape in self.graphs:
            self.graphs.move_to_end(shape)
            return self.graphs[shape]
        prefix_key = (shape.batch, shape.prefix)
        if prefix_key not in self.prefixes:
            capacity = dict(shape.capacity)
            capacities = [capacity[kind] for kind in self.layer_kinds]
            self.prefixes[prefix_key] = StaticPrefix.like(cache, capacities, self.layer_kinds)
        graph = _StepGraph(self.model, self.prefixes[prefix_key], shape)
        self.graphs[shape] = graph
        self._evict()
        return graph

    def _capture(self, graph: _StepGraph) -> bool:
        """Record `graph` (already bound, so the warm-up runs see real inputs); False, and eager from then on for
        its shape, if that fails."""
        shape = graph.shape
        try:
            self.capture_s[shape] = graph.capture(self.pool)
        except Exception as err:  # any capture problem means eager steps for this shape, never a failed job
            log.warning("CUDA graph capture failed for %s, running it eagerly: %s", shape, err)
            self.failed.add(shape)
            self.graphs.pop(shape, None)
            self._evict()
            return False
        log.info("captured the denoising step for %s in %.2f s", shape, self.capture_s[shape])
        return True

    def _evict(self) -> None:
        while len(self.graphs) > self.buckets.max_graphs:
            self.graphs.popitem(last=False)
        used = {(shape.batch, shape.prefix) for shape in self.graphs}
        for key in [key for key in self.prefixes if key not in used]:
            del self.prefixes[key]

    def _cached_lengths(self, cache: Any, batch: int) -> dict[str, int] | None:
        """Cached tokens per layer kind, or None for caches this module cannot mirror (every layer of a kind must
        hold the same number of tokens, for the whole batch)."""
        layers = getattr(cache, "layers", None)
        if layers is None or len(layers) != len(self.layer_kinds):
            return None
        lengths: dict[str, int] = {}
        for kind, layer in zip(self.layer_kinds, layers, strict=True):
            keys = getattr(layer, "keys", None)
            if not isinstance(keys, torch.Tensor) or keys.dim() != 4 or keys.shape[0] != batch:
                return None
            if lengths.setdefault(kind, keys.shape[-2]) != keys.shape[-2]:
                return None
        return lengths

    def _shape(self, batch: int, length: int, lengths: dict[str, int]) -> _Shape | None:
        canvas = _bucket(length, self.buckets.canvas_lengths)
        prefix = _bucket(max(lengths.values()), self.buckets.prefix_lengths)
        if canvas is None or prefix is None or batch > self.buckets.max_batch:
            return None
        # A sliding layer's cache keeps at most window - 1 tokens, so its buffer needs no more; rounded up to 16
        # slots, as the attention kernels want mask rows of a multiple of 16.
        window = -(-(self.sliding_window - 1) // 16) * 16
        capacity = {kind: min(prefix, window) if kind == "sliding_attention" else prefix for kind in lengths}
        if any(lengths[kind] > capacity[kind] for kind in lengths):
            return None
        return _Shape(batch=batch, canvas=canvas, prefix=prefix, capacity=tuple(sorted(capacity.items())))


def _bucket(value: int, buckets: tuple[int, ...]) -> int | None:
    """The smallest bucket that holds `value`, or None."""
    return next((bucket for bucket in sorted(buckets) if bucket >= value), None)
