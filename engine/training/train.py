"""Train the embedded default model end to end: corpus, tokenizer, denoising batches, a time-boxed run, and a
checkpoint saved with `save_pretrained` exactly as the engine loads it.

    python -m diffusion_copilot.engine.training.train --out DIR --minutes 12

Writes DIR/checkpoint/ (bf16), DIR/train_log.jsonl, DIR/data_stats.json and DIR/heldout_sample.jsonl.gz.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..prompt.budget import chars_per_token
from ..prompt.edit import EDIT_CANVAS_TOKENS
from ..prompt.layout import PREFIX
from ..weights.tiny_checkpoint import TinyShape, build_model, train_tokenizer
from .batches import BatchPlan, DeviceCorpus
from .corpus import SourceFile, capped_by_language, deduplicated, installed_sources, source_stats
from .dataset import tokenize_corpus
from .edit_rows import build_edit_rows
from .file_context import corpus_contexts
from .forward import canvas_logits, soft_embedding

log = logging.getLogger("diffusion_copilot.training")

DEFAULT_SHAPE = TinyShape(
    vocab_size=8192,
    hidden_size=384,
    intermediate_size=384,
    num_layers=6,
    num_heads=6,
    num_kv_heads=2,
    head_dim=64,
    global_head_dim=64,
    sliding_window=256,
    num_experts=4,
    top_k_experts=2,
    moe_intermediate_size=256,
    canvas_length=32,
    max_positions=4096,
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a run."""

    minutes: float = 12.0
    seed: int = 0
    lr: float = 2e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 300
    weight_decay: float = 0.1
    self_conditioning_rate: float = 0.5  # share of steps that run two passes, the second conditioned on the first
    shape: TinyShape = DEFAULT_SHAPE
    plan: BatchPlan = field(default_factory=BatchPlan)
    other_language_share: float = 0.08  # C and C++ each up to this share of the Python characters
    tokenizer_chars: int = 30_000_000
    max_files: int | None = None
    compile: bool = True
    log_every_s: float = 10.0
    save_every_s: float = 240.0
    held_out_sample: int = 400
    context_chars: int = 400  # cross-file context per file, what the server's budget gives a 320-token prompt
    edit_rate: float = 0.15  # rows that are next-edit jobs (edit_rows.py); their 128-token canvas widens every row
    max_edit_rows: int = 10_000  # about 2 minutes to build on one core


def corpus_files(config: TrainConfig) -> tuple[list[SourceFile], list[SourceFile]]:
    """(training files, held-out files), deduplicated and licence-checked."""
    files = list(deduplicated(installed_sources()))
    share = config.other_language_share
    files = capped_by_language(files, {"c": share, "cpp": share}, config.seed)
    random.Random(config.seed).shuffle(files)
    if config.max_files is not None:
        files = files[: config.max_files]
    return [f for f in files if not f.is_held_out], [f for f in files if f.is_held_out]


def tokenizer_texts(files: list[SourceFile], budget_chars: int) -> list[str]:
    """A sample of the training files for the BPE merges."""
    texts, total = [], 0
    for source in files:
        if total >= budget_chars:
            break
        texts.append(source.text)
        total += len(source.text)
    return texts


def lr_at(config: TrainConfig, step: int, progress: float) -> float:
    """Linear warm-up, then cosine decay over the wall-clock budget to min_lr_ratio."""
    warm = min(1.0, (step + 1) / config.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return config.lr * warm * (config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine)


def optimizer_for(model: Any, config: TrainConfig, fused: bool) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices only."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    rest = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95), fused=fused)


def save_checkpoint(model: Any, tokenizer: Any, directory: Path, prompt_tokens: int) -> None:
    """A bf16 copy of the model and the tokenizer (its model_max_length: the prompt length trained on), with the
    default model's own stop settings: a canvas whose mean entropy is below 0.5 is done (its argmax rarely repeats
    from one step to the next, so the 26B checkpoint's 0.005 / stable-for-1-step never fires; eval_stopping.py)."""
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.model_max_length = prompt_tokens
    saved = copy.deepcopy(model).to(torch.bfloat16).eval()
    saved.generation_config.confidence_threshold = 0.5
    saved.generation_config.stability_threshold = 0
    saved.save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def write_data_files(
    out: Path,
    config: TrainConfig,
    files: list[SourceFile],
    held_out: list[SourceFile],
    token_counts: list[int],
    tokenizer: Any,
) -> None:
    """data_stats.json (per distribution: licence, files, characters, tokens) and a held-out sample."""
    stats = source_stats(files + held_out)
    for source, count in zip(files, token_counts, strict=True):
        stats[source.distribution].tokens += count
    summary = {
        "distributions": {name: asdict(entry) for name, entry in sorted(stats.items())},
        "train_files": len(files),
        "held_out_files": len(held_out),
        "train_chars": sum(len(f.text) for f in files),
        "held_out_chars": sum(len(f.text) for f in held_out),
        "train_tokens": sum(token_counts),
        "vocab_size": len(tokenizer),
        "held_out": [{"path": f.path, "distribution": f.distribution, "sha1": f.digest} for f in held_out],
    }
    (out / "data_stats.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    candidates = [f for f in held_out if f.language == "python" and 1500 <= len(f.text) <= 40_000]
    sample = random.Random(config.seed).sample(candidates, min(config.held_out_sample, len(candidates)))
    # each sampled file's context as training rendered it, from the training files and the other held-out files
    sampled = {f.distribution for f in sample}
    everything = [f for f in files + held_out if f.distribution in sampled]
    contexts = dict(zip(map(id, everything), corpus_contexts(everything, config.context_chars), strict=True))
    with gzip.open(out / "heldout_sample.jsonl.gz", "wt", encoding="utf-8") as handle:
        for source in sample:
            handle.write(
                json.dumps(
                    {
                        "path": source.path,
                        "distribution": source.distribution,
                        "license": source.license,
                        "language": source.language,
                        "text": source.text,
                        "context": contexts[id(source)],
                    }
                )
                + "\n"
            )


def train(config: TrainConfig, out: Path, device: torch.device) -> dict[str, Any]:
    """Run the whole pipeline; return the run summary (also written to out/train_summary.json)."""
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    files, held_out = corpus_files(config)
    log.info("corpus: %d training files, %d held out (%.1fs)", len(files), len(held_out), time.perf_counter() - started)
    tokenizer = train_tokenizer(iter(tokenizer_texts(files, config.tokenizer_chars)), config.shape.vocab_size)
    contexts = corpus_contexts(files, config.context_chars)
    log.info("contexts: %d of %d files (%.1fs)", sum(map(bool, contexts)), len(files), time.perf_counter() - started)
    corpus = tokenize_corpus(tokenizer, files, seed=config.seed, contexts=contexts)
    token_counts = (corpus.file_end - corpus.file_start).tolist()
    write_data_files(out, config, files, held_out, token_counts, tokenizer)
    plan, edits = config.plan, None
    if config.edit_rate > 0:
        edits = build_edit_rows(
            tokenizer, files, config.max_edit_rows, plan.prompt_slots, chars_per_token(tokenizer), config.seed
        )
        plan = replace(plan, edit_rate=config.edit_rate, canvas_slots=max(plan.canvas_slots, EDIT_CANVAS_TOKENS))
        log.info("edit rows: %d %s", len(edits), dict(edits.kinds))
    data_s = time.perf_counter() - started
    log.info("tokens: %d in %d spans (data ready after %.1fs)", corpus.n_tokens, len(corpus.span_file), data_s)

    model = build_model(config.shape, tokenizer, config.seed).to(device).float().train()
    vocab = int(model.config.text_config.vocab_size)
    params = sum(p.numel() for p in model.parameters())
    log.info("model: %.2fM parameters", params / 1e6)
    data = DeviceCorpus(corpus, device, vocab, tokenizer.convert_tokens_to_ids(PREFIX), edits)
    optimizer = optimizer_for(model, config, fused=device.type == "cuda")
    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed)
    step_rng = random.Random(config.seed)

    def logits_of(
        tokens: torch.Tensor, prompt_len: torch.Tensor, canvas_len: torch.Tensor, signal: torch.Tensor
    ) -> torch.Tensor:
        return canvas_logits(model, tokens, prompt_len, canvas_len, plan.prompt_slots, signal)

    forward = torch.compile(logits_of, dynamic=False) if config.compile else logits_of
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    hidden = config.shape.hidden_size
    no_signal = torch.zeros(plan.rows, plan.canvas_slots, hidden, device=device)
    log_path = out / "train_log.jsonl"
    log_path.write_text("", encoding="utf-8")
    budget_s = config.minutes * 60
    step, tokens_seen, first_step_s = 0, 0, 0.0
    loop_start = last_log = last_save = time.perf_counter()
    losses: list[float] = []
    while (now := time.perf_counter()) - loop_start < budget_s:
        progress = (now - loop_start) / budget_s
        lr = lr_at(config, step, progress)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = data.batch(plan, generator)
        try:
            with autocast:
                signal = no_signal
                if step_rng.random() < config.self_conditioning_rate:
                    with torch.no_grad():
                        first = forward(batch.tokens, batch.prompt_len, batch.canvas_len, no_signal)
                        signal = soft_embedding(model, first).float()
                logits = forward(batch.tokens, batch.prompt_len, batch.canvas_len, signal)
        except Exception:
            if forward is logits_of:
                raise
            log.exception("compiled forward failed; continuing eagerly")
            forward = logits_of
            continue
        per_token = F.cross_entropy(logits.reshape(-1, vocab), batch.targets.reshape(-1), reduction="none")
        mask = batch.loss_mask.reshape(-1).float()
        loss = (per_token * mask).sum() / mask.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        tokens_seen += batch.token_count
        step += 1
        if step == 1:
            first_step_s = time.perf_counter() - loop_start
            log.info("first step (compile) took %.1fs", first_step_s)
        if time.perf_counter() - last_log >= config.log_every_s or step == 1:
            last_log = time.perf_counter()
            losses.append(float(loss.detach()))
            edit_loss = None  # the edit rows' own loss, to follow the edit objective apart from completions
            if batch.is_edit is not None and bool(batch.is_edit.any()):
                edit_mask = mask * batch.is_edit.repeat_interleave(plan.canvas_slots)
                edit_loss = round(float((per_token.detach() * edit_mask).sum() / edit_mask.sum()), 4)
            elapsed = last_log - loop_start
            entry = {
                "step": step,
                "elapsed_s": round(elapsed, 1),
                "loss": round(losses[-1], 4),
                "edit_loss": edit_loss,
                "lr": lr,
                "tokens_seen": tokens_seen,
                "tokens_per_s": round(tokens_seen / max(elapsed - first_step_s, 1e-9)) if step > 1 else 0,
            }
            with log_path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
            log.info("%s", entry)
        if time.perf_counter() - last_save >= config.save_every_s:
            last_save = time.perf_counter()
            save_checkpoint(model, tokenizer, out / "checkpoint", plan.prompt_slots)
    train_s = time.perf_counter() - loop_start
    save_checkpoint(model, tokenizer, out / "checkpoint", plan.prompt_slots)
    summary = {
        "steps": step,
        "tokens_seen": tokens_seen,
        "train_s": round(train_s, 1),
        "data_s": round(data_s, 1),
        "first_step_s": round(first_step_s, 1),
        "tokens_per_s": round(tokens_seen / max(train_s - first_step_s, 1e-9)),
        "final_loss": round(sum(losses[-5:]) / max(len(losses[-5:]), 1), 4),
        "parameters": params,
        "edit_rows": dict(edits.kinds) if edits is not None else {},
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "config": asdict(replace(config)),
    }
    (out / "train_summary.json").write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=12.0)
    parser.add_argument("--rows", type=int, default=BatchPlan.rows)
    parser.add_argument("--max-files", type=int, default=None)
    parser.add_argument("--vocab-size", type=int, default=DEFAULT_SHAPE.vocab_size)
    parser.add_argument("--tiny", action="store_true", help="a 0.4M-parameter shape, for smoke runs")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--edit-rate", type=float, default=TrainConfig.edit_rate, help="0: no next-edit rows")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    shape = replace(TinyShape() if args.tiny else DEFAULT_SHAPE, vocab_size=args.vocab_size)
    config = TrainConfig(
        minutes=args.minutes,
        seed=args.seed,
        shape=shape,
        plan=BatchPlan(rows=args.rows),
        max_files=args.max_files,
        compile=not args.no_compile,
        edit_rate=args.edit_rate,
    )
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    else:
        torch.set_num_threads(1)  # small models on small CPUs run faster on one thread
    summary = train(config, args.out, torch.device(args.device))
    log.info("done: %s", {k: v for k, v in summary.items() if k != "config"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
