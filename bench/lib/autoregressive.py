"""Autoregressive decoding with DiffusionGemma's causal encoder as a decoder-only LM over a static KV cache:
the baseline a diffusion engine must beat on whole blocks. Greedy, one token per forward, eager or replayed
from one CUDA graph. Used by bench/gpu/engine.py (W6).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import torch

from diffusion_copilot.engine.hf_internals import with_cache


@contextlib.contextmanager
def _reused_device_constants() -> Iterator[None]:
    """`torch.tensor(data, device=cuda)` returns one tensor per distinct call: a graph cannot capture the host
    copy it makes (the static sliding-window cache builds an index this way), so warm-up makes them first."""
    made: dict[tuple[str, str, str], torch.Tensor] = {}
    create = torch.tensor

    def tensor(data: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        device = kwargs.get("device")
        if device is None or torch.device(device).type != "cuda":
            return create(data, *args, **kwargs)
        key = (repr(data), str(kwargs.get("dtype")), str(device))
        if key not in made:
            made[key] = create(data, *args, **kwargs)
        return made[key]

    torch.tensor = tensor
    try:
        yield
    finally:
        torch.tensor = create


class ArDecoder:
    """Greedy decoding of up to `max_new` tokens after a `prompt_len`-token prompt, for one sequence."""

    def __init__(self, model: Any, prompt_len: int, max_new: int, graphs: bool) -> None:
        from transformers import StaticCache

        self.model = model
        self.text = model.model.encoder.language_model
        self.config = model.config.get_text_config(decoder=True)
        self.device = model.device
        self.softcap = float(self.config.final_logit_softcapping or 0.0)
        spare = 8  # graph warm-up and capture pass through the cache too
        self.cache = StaticCache(config=self.config, max_cache_len=prompt_len + max_new + spare)
        self.prompt_len = prompt_len
        self.token = torch.zeros(1, 1, dtype=torch.long, device=self.device)  # fed back in place
        self.position = torch.zeros(1, 1, dtype=torch.long, device=self.device)
        self.masks: dict[str, torch.Tensor] = {}
        self.graph: torch.cuda.CUDAGraph | None = None
        self.graphs = graphs

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.model.lm_head(hidden[:, -1:]).float()  # [1, 1, vocab]
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    @torch.inference_mode()
    def prefill(self, prompt: torch.Tensor) -> None:
        """Encode the prompt into the static cache and pick the first token."""
        positions = torch.arange(prompt.shape[1], device=self.device)[None]
        out = self.model.model.encoder(input_ids=prompt, **with_cache(self.cache), position_ids=positions)
        self.token.copy_(self._logits(out.last_hidden_state).argmax(-1))
        self.position.fill_(prompt.shape[1])
        if self.graphs:
            self._capture()

    def _update_masks(self) -> None:
        """The attention masks of the next position, computed outside the graph and copied into its inputs."""
        from transformers.masking_utils import create_causal_mask, create_sliding_window_causal_mask

        embeds = torch.empty(1, 1, self.config.hidden_size, device=self.device)
        kwargs = {
            "config": self.config,
            "inputs_embeds": embeds,
            "attention_mask": None,
            "cache": self.cache,
            "position_ids": self.position,
        }
        fresh = {
            "full_attention": create_causal_mask(**kwargs),
            "sliding_attention": create_sliding_window_causal_mask(**kwargs),
        }
        for kind, mask in fresh.items():
            if kind in self.masks:
                self.masks[kind].copy_(mask)
            else:
                self.masks[kind] = mask.clone()

    def _forward(self) -> None:
        """One token: read `token` at `position`, write the next token and position back in place."""
        out = self.text(
            input_ids=self.token, attention_mask=self.masks, position_ids=self.position, **with_cache(self.cache)
        )
        self.token.copy_(self._logits(out.last_hidden_state).argmax(-1))
        self.position.add_(1)

    def _capture(self) -> None:
        """Warm up on a side stream, then capture one step (torch.cuda.graphs' recipe); the cache, token and
        position are put back as the prefill left them, since warm-up steps really run."""
        saved = [
            {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in vars(layer).items()}
            for layer in self.cache.layers
        ]
        token, position = self.token.clone(), self.position.clone()
        with _reused_device_constants():
            stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):
                    self._update_masks()
                    self._forward()
            torch.cuda.current_stream().wait_stream(stream)
            self._update_masks()
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self._forward()
        for layer, state in zip(self.cache.layers, saved, strict=True):
            for name, value in state.items():
                if isinstance(value, torch.Tensor):
                    getattr(layer, name).copy_(value)
                else:
                    setattr(layer, name, value)
        self.token.copy_(token)
        self.position.copy_(position)

    @torch.inference_mode()
    def decode(self, count: int) -> list[int]:
        """Decode `count` tokens one forward each; returns them (one host read at the end)."""
        tokens = []
        for _ in range(count):
            self._update_masks()
            if self.graph is not None:
                self.graph.replay()
                for layer in self.cache.layers:  # host-side lengths a replay cannot advance (sliding-window masks)
                    if hasattr(layer, "cumulative_length_int"):
                        layer.cumulative_length_int += 1
            else:
                self._forward()
            tokens.append(self.token.clone())
        return torch.cat(tokens, dim=-1)[0].tolist()


def time_ar(model: Any, prompt: torch.Tensor, count: int, graphs: bool) -> dict[str, float]:
    """Prefill (with capture, when graphs) then decode `count` tokens; milliseconds of each part."""
    decoder = ArDecoder(model, prompt.shape[1], count, graphs)
    _sync(model.device)
    started = time.perf_counter()
    decoder.prefill(prompt)
    _sync(model.device)
    prefill_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    decoder.decode(count)
    _sync(model.device)
    decode_ms = (time.perf_counter() - started) * 1000
    return {"prefill_and_capture_ms": prefill_ms, "decode_ms": decode_ms, "token_ms": decode_ms / count}


def graph_matches_eager(model: Any, prompt: torch.Tensor, count: int = 8) -> bool:
    """Whether graph replay decodes the same greedy tokens as eager steps from the same prompt."""
    eager = ArDecoder(model, prompt.shape[1], count, graphs=False)
    eager.prefill(prompt)
    graphed = ArDecoder(model, prompt.shape[1], count, graphs=True)
    graphed.prefill(prompt)
    return eager.decode(count) == graphed.decode(count)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
