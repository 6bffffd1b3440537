"""Denoising batches built on the device from a `TokenizedCorpus`, all rows the same shape.

Each row is [prompt slots | canvas slots]. The prompt sits right-aligned in its slots, in the layout of
`engine.prompt.layout` (header, suffix, <|prefix|>, prefix), left-padded; on some rows the header carries the file's
cross-file context. The canvas holds the completion, then <eos>
and <pad> up to its length (32 or 64); a completion longer than the canvas fills it without <eos>. On some rows
the first suffix tokens are pinned into the canvas tail instead of (or as well as) the prompt suffix: the
completion, <eos>, <pad>s, then the pinned tokens, exactly what `engine.prompt.layout.suffix_pins` asks the sampler to
hold. Canvas slots past the row's canvas length are absent: masked out of attention and of the loss.

Edit rows (edit_rows.py), at `edit_rate`, replace whole rows: the edit job's prompt, and its 128-token canvas
starting from the window as it reads now (renoised at a random level, the pinned healed characters kept), the target
the window as it should read.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .dataset import TokenizedCorpus
from .edit_rows import EditRows

PAD_ID, EOS_ID = 0, 1


@dataclass(frozen=True)
class BatchPlan:
    """Shapes and mixing rates of the batches."""

    rows: int = 512
    prompt_slots: int = 320
    canvas_slots: int = 64  # 128 with edit rows: completion rows keep their own lengths, the rest absent
    short_canvas: int = 32
    long_canvas: int = 64  # (at most canvas_slots)
    short_canvas_rate: float = 0.6  # rows with a 32-token canvas, the rest use 64
    prompt_suffix_rate: float = 0.8  # rows with the suffix in the prompt
    pinned_rate: float = 0.3  # rows with the first suffix tokens pinned into the canvas tail (when they fit)
    max_pinned: int = 12
    max_suffix_tokens: int = 96  # the prompt suffix is cut to 16..this many tokens
    short_prefix_rate: float = 0.2  # rows whose prefix is cut short, like prompts near the top of a file
    context_rate: float = 0.5  # rows of files that have cross-file context that show it in the prompt
    min_noise: float = 0.02
    edit_rate: float = 0.0  # rows that are edit jobs (needs canvas_slots >= the edit canvas)
    max_edit_noise: float = 0.5  # an edit row's start is renoised at up to this level (the server uses 0.25)


@dataclass(frozen=True)
class Batch:
    """One training batch on the device."""

    tokens: torch.Tensor  # [rows, prompt_slots + canvas_slots]: prompt then the corrupted canvas
    targets: torch.Tensor  # [rows, canvas_slots]: the clean canvas
    loss_mask: torch.Tensor  # [rows, canvas_slots] bool: present, not pinned
    prompt_len: torch.Tensor  # [rows]
    canvas_len: torch.Tensor  # [rows]
    is_edit: torch.Tensor | None = None  # [rows] bool: edit rows (None: none in this batch)

    @property
    def token_count(self) -> int:
        """Prompt and canvas tokens in the batch (pads and absent slots not counted)."""
        return int((self.prompt_len + self.canvas_len).sum())


class DeviceCorpus:
    """A TokenizedCorpus moved to a device once, sampled into batches there."""

    def __init__(
        self,
        corpus: TokenizedCorpus,
        device: torch.device,
        vocab_size: int,
        prefix_id: int,
        edits: EditRows | None = None,
    ) -> None:
        def put(array: object) -> torch.Tensor:
            return torch.as_tensor(array, device=device)

        self.device = device
        self.vocab_size = vocab_size
        self.prefix_id = prefix_id
        self.tokens = put(corpus.tokens).long()
        self.file_start = put(corpus.file_start)
        self.file_end = put(corpus.file_end)
        self.headers = put(corpus.headers).long()
        self.header_len = put(corpus.header_len)
        self.context_headers = put(corpus.context_headers).long()
        self.context_header_len = put(corpus.context_header_len)
        self.span_file = put(corpus.span_file)
        self.span_cursor = put(corpus.span_cursor)
        self.span_end = put(corpus.span_end)
        self.edits = None
        if edits is not None and len(edits):
            self.edits = (
                put(edits.prompts).long(),
                put(edits.prompt_len),
                put(edits.start).long(),
                put(edits.target).long(),
                put(edits.pinned),
            )

    def _at(self, index: torch.Tensor) -> torch.Tensor:
        return self.tokens[index.clamp(0, self.tokens.shape[0] - 1)]

    def batch(self, plan: BatchPlan, generator: torch.Generator) -> Batch:
        """Sample a batch: spans, canvas lengths, suffix placement, prefix cut and noise level per row."""
        rows, dev = plan.rows, self.device

        def uniform() -> torch.Tensor:
            return torch.rand(rows, device=dev, generator=generator)

        def integers(low: int, high: int) -> torch.Tensor:
            return torch.randint(low, high, (rows,), device=dev, generator=generator)

        pick = torch.randint(0, self.span_file.shape[0], (rows,), device=dev, generator=generator)
        file, cursor, end = self.span_file[pick], self.span_cursor[pick], self.span_end[pick]
        file_start, file_end = self.file_start[file], self.file_end[file]
        long_canvas = min(plan.long_canvas, plan.canvas_slots)
        canvas_len = torch.where(uniform() < plan.short_canvas_rate, plan.short_canvas, long_canvas)
        middle = end - cursor
        ended = middle < canvas_len  # room for <eos> after the completion
        kept = torch.minimum(middle, canvas_len)
        pinned = integers(4, plan.max_pinned + 1)
        pins_fit = (uniform() < plan.pinned_rate) & ended & (middle + 1 + pinned <= canvas_len)
        pins_fit &= end + pinned <= file_end
        pinned = torch.where(pins_fit, pinned, 0)
        prompt_suffix = torch.where(pins_fit, uniform() < 0.5, uniform() < plan.prompt_suffix_rate)

        # canvas: completion, <eos>, <pad>..., pinned suffix head; absent slots past canvas_len
        slot = torch.arange(plan.canvas_slots, device=dev)[None]
        targets = torch.where(slot < kept[:, None], self._at(cursor[:, None] + slot), PAD_ID)
        targets = torch.where(ended[:, None] & (slot == middle[:, None]), EOS_ID, targets)
        pin_from = (canvas_len - pinned)[:, None]
        is_pin = (slot >= pin_from) & (slot < canvas_len[:, None])
        targets = torch.where(is_pin, self._at(end[:, None] + slot - pin_from), targets)
        present = slot < canvas_len[:, None]
        targets = torch.where(present, targets, PAD_ID)
        loss_mask = present & ~is_pin

        # prompt: header (with cross-file context on some rows), suffix, <|prefix|>, prefix (right-aligned)
        with_context = (uniform() < plan.context_rate) & (self.context_header_len[file] > 0)
        header_len = torch.where(with_context, self.context_header_len[file], self.header_len[file])
        suffix_cap = torch.minimum(integers(16, plan.max_suffix_tokens + 1), file_end - end)
        suffix_len = torch.minimum(torch.where(prompt_suffix, suffix_cap, 0), plan.prompt_slots - header_len - 1)
        room = plan.prompt_slots - header_len - suffix_len - 1
        prefix_cap = torch.where(uniform() < plan.short_prefix_rate, integers(8, plan.prompt_slots), room)
        prefix_len = torch.minimum(torch.minimum(cursor - file_start, room), prefix_cap).clamp(min=0)
        prompt_len = header_len + suffix_len + 1 + prefix_len
        index = torch.arange(plan.prompt_slots, device=dev)[None] - (plan.prompt_slots - prompt_len)[:, None]
        header_part = torch.where(
            with_context[:, None],
            self.context_headers[file[:, None], index.clamp(0, self.context_headers.shape[1] - 1)],
            self.headers[file[:, None], index.clamp(0, self.headers.shape[1] - 1)],
        )
        hs = (header_len + suffix_len)[:, None]
        prompt = torch.where(
            index < header_len[:, None], header_part, self._at(end[:, None] + index - header_len[:, None])
        )
        prompt = torch.where(index == hs, self.prefix_id, prompt)
        prompt = torch.where(index > hs, self._at(cursor[:, None] - prefix_len[:, None] + index - hs - 1), prompt)
        prompt = torch.where(index < 0, PAD_ID, prompt)

        # uniform-random corruption at a per-row noise level, never on pinned or absent slots
        level = uniform().clamp(min=plan.min_noise)[:, None]
        corrupt = (torch.rand(targets.shape, device=dev, generator=generator) < level) & loss_mask
        noise = torch.randint(0, self.vocab_size, targets.shape, device=dev, generator=generator)
        canvas = torch.where(corrupt, noise, targets)
        batch = Batch(
            tokens=torch.cat([prompt, canvas], dim=1),
            targets=targets,
            loss_mask=loss_mask,
            prompt_len=prompt_len,
            canvas_len=canvas_len,
        )
        if self.edits is not None and plan.edit_rate > 0:
            batch = self._with_edits(batch, plan, generator)
        return batch

    def _with_edits(self, batch: Batch, plan: BatchPlan, generator: torch.Generator) -> Batch:
        """`batch` with `plan.edit_rate` of its rows replaced by edit rows."""
        assert self.edits is not None
        prompts, prompt_len, start, target, pinned = self.edits
        rows, dev, width = plan.rows, self.device, start.shape[1]
        if plan.canvas_slots < width:
            raise ValueError(f"edit rows need {width} canvas slots; the plan has {plan.canvas_slots}")
        is_edit = torch.rand(rows, device=dev, generator=generator) < plan.edit_rate
        pick = torch.randint(0, prompts.shape[0], (rows,), device=dev, generator=generator)
        slot = torch.arange(plan.canvas_slots, device=dev)[None]
        present = slot < width
        wide = (0, plan.canvas_slots - width)
        targets = torch.nn.functional.pad(target[pick], wide)
        loss_mask = present & (slot >= pinned[pick][:, None])
        level = (torch.rand(rows, 1, device=dev, generator=generator) * plan.max_edit_noise).clamp(min=plan.min_noise)
        corrupt = (torch.rand(targets.shape, device=dev, generator=generator) < level) & loss_mask
        noise = torch.randint(0, self.vocab_size, targets.shape, device=dev, generator=generator)
        canvas = torch.where(corrupt, noise, torch.nn.functional.pad(start[pick], wide))
        row = is_edit[:, None]
        return Batch(
            tokens=torch.where(row, torch.cat([prompts[pick], canvas], dim=1), batch.tokens),
            targets=torch.where(row, targets, batch.targets),
            loss_mask=torch.where(row, loss_mask, batch.loss_mask),
            prompt_len=torch.where(is_edit, prompt_len[pick], batch.prompt_len),
            canvas_len=torch.where(is_edit, width, batch.canvas_len),
            is_edit=is_edit,
        )
