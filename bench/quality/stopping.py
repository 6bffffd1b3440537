"""Default model: how early the sampler's stable-and-confident stop could end a completion, on held-out single-line
tasks (32-token canvas, fixed seeds). Records each step's mean entropy and argmax draft at a step budget, then
replays the stop rule offline for several (confidence_threshold, stability_threshold) pairs: the random draws of a
seeded run do not depend on the stop rule, so the draft a run would return at its stop step is the one recorded.
`--check` re-runs the engine with a pair and reports measured latency, mean steps and exact match beside the replay.

    python -m bench.quality.stopping [--tasks 40] [--budget 16] [--check 0.5:1 --check 1.0:2]

Writes bench/results/eval_stopping.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import replace
from typing import Any

import torch

from bench.lib.tasks import RESULTS, Task, environment, heldout_tasks, score
from diffusion_copilot.engine import Engine, Job, PromptParts, StepControl, strip_healed
from diffusion_copilot.engine.backends.local import block_sampler

CONFIDENCE = (0.005, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)
STABILITY = (0, 1, 2)  # 0: entropy alone


def _text(engine: Engine, tokens: list[int], healed: str) -> str:
    """What `Engine.run` returns for an argmax canvas: cut at the first EOS, decoded, healed characters stripped."""
    eos = engine.eos_token_ids
    cut = next((i for i, t in enumerate(tokens) if t in eos), len(tokens))
    return strip_healed(engine.decode(tokens[:cut]), healed) or ""


def trace(engine: Engine, task: Task, budget: int, seed: int) -> dict[str, Any]:
    """One completion run to its full budget (stop disabled): every step's argmax draft and mean entropy."""
    entropies: list[float] = []
    drafts: list[list[int]] = []
    tracker_update = block_sampler.StabilityTracker.update

    def recording(self: Any, argmax_canvas: torch.Tensor, entropy: torch.Tensor) -> torch.Tensor:
        entropies.append(float(entropy.mean()))
        return tracker_update(self, argmax_canvas, entropy)

    encoded = engine.encode(PromptParts(task.path, "python", task.prefix, task.suffix))
    base = engine.denoiser.params
    engine.denoiser.params = replace(base, confidence_threshold=-1.0)  # never stops: every step is recorded
    block_sampler.StabilityTracker.update = recording  # type: ignore[method-assign]
    try:
        engine.run(
            Job(prompt_ids=encoded.ids, canvas_length=32, max_steps=budget, seed=seed),
            StepControl(on_draft=lambda _step, canvas: drafts.append(canvas[0])),
        )
    finally:
        block_sampler.StabilityTracker.update = tracker_update  # type: ignore[method-assign]
        engine.denoiser.params = base
    return {"entropy": entropies, "texts": [_text(engine, d, encoded.healed) for d in drafts], "drafts": drafts}


def stop_step(run: dict[str, Any], confidence: float, stability: int) -> int:
    """The 1-based step at which the sampler's rule (argmax unchanged for `stability` steps, mean entropy below
    `confidence`) stops, else the budget."""
    drafts, entropy = run["drafts"], run["entropy"]
    for step in range(len(drafts)):
        stable = step >= stability and all(drafts[step - k] == drafts[step] for k in range(1, stability + 1))
        if stable and entropy[step] < confidence:
            return step + 1
    return len(drafts)


def measure(engine: Engine, tasks: list[Task], budget: int, seed: int, pairs: list[str]) -> dict[str, Any]:
    """Real runs with each CONFIDENCE:STABILITY pair set on the engine, pairs taking turns task by task (so load
    from other jobs falls on all of them alike): exact match, mean steps, latency (encode + run)."""
    base = engine.denoiser.params
    settings = {}
    for pair in pairs:
        confidence, stability = pair.split(":")
        settings[pair] = replace(base, confidence_threshold=float(confidence), stability_threshold=int(stability))
    rows: dict[str, list[dict[str, Any]]] = {pair: [] for pair in pairs}
    try:
        for index, task in enumerate([tasks[0], *tasks]):
            for pair, params in settings.items():
                engine.denoiser.params = params
                started = time.perf_counter()
                encoded = engine.encode(PromptParts(task.path, "python", task.prefix, task.suffix))
                result = engine.run(Job(prompt_ids=encoded.ids, canvas_length=32, max_steps=budget, seed=seed))
                elapsed = (time.perf_counter() - started) * 1000
                if index == 0:
                    continue  # warm-up
                text = strip_healed(result.canvases[0].text, encoded.healed) or ""
                rows[pair].append(score(task, text) | {"ms": elapsed, "steps": len(result.timings.step_ms)})
    finally:
        engine.denoiser.params = base
    return {
        pair: {
            "exact": round(sum(r["exact"] for r in got) / len(got), 4),
            "edit_sim": round(sum(r["edit_sim"] for r in got) / len(got), 4),
            "steps_mean": round(statistics.mean(r["steps"] for r in got), 2),
            "latency_p50_ms": round(statistics.median(r["ms"] for r in got), 1),
            "latency_mean_ms": round(statistics.mean(r["ms"] for r in got), 1),
        }
        for pair, got in rows.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--budget", type=int, action="append", help="step budgets (default 8 and 16)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--check", action="append", default=[], help="CONFIDENCE:STABILITY to run for real (pairs take turns)"
    )
    parser.add_argument("--out", default=str(RESULTS / "eval_stopping.json"))
    args = parser.parse_args()
    budgets = args.budget or [8, 16]
    tasks = heldout_tasks(("line",))[: args.tasks]
    engine = Engine.load(None, device="cpu")
    load_before = os.getloadavg()[0]
    trace(engine, tasks[0], budgets[0], args.seed)  # warm-up
    result: dict[str, Any] = {"env": environment(), "canvas": 32, "tasks": len(tasks), "seed": args.seed}
    for budget in budgets:
        runs = [trace(engine, task, budget, args.seed) for task in tasks]
        per_step = [
            {
                "step": s + 1,
                "entropy_mean": round(statistics.mean(r["entropy"][s] for r in runs), 4),
                "entropy_p50": round(statistics.median(r["entropy"][s] for r in runs), 4),
                "unchanged_from_previous": round(
                    sum(s > 0 and r["drafts"][s] == r["drafts"][s - 1] for r in runs) / len(runs), 3
                ),
                "exact_if_stopped_here": round(
                    sum(score(t, r["texts"][s])["exact"] for t, r in zip(tasks, runs, strict=True)) / len(runs), 4
                ),
                "edit_sim_if_stopped_here": round(
                    sum(score(t, r["texts"][s])["edit_sim"] for t, r in zip(tasks, runs, strict=True)) / len(runs), 4
                ),
            }
            for s in range(budget)
        ]
        replay = []
        for stability in STABILITY:
            for confidence in CONFIDENCE:
                stops = [stop_step(r, confidence, stability) for r in runs]
                texts = [r["texts"][s - 1] for r, s in zip(runs, stops, strict=True)]
                scores = [score(t, x) for t, x in zip(tasks, texts, strict=True)]
                replay.append(
                    {
                        "confidence_threshold": confidence,
                        "stability_threshold": stability,
                        "steps_mean": round(statistics.mean(stops), 2),
                        "stopped_early": round(sum(s < budget for s in stops) / len(stops), 3),
                        "exact": round(sum(x["exact"] for x in scores) / len(scores), 4),
                        "edit_sim": round(sum(x["edit_sim"] for x in scores) / len(scores), 4),
                    }
                )
        checks = measure(engine, tasks, budget, args.seed, args.check) if args.check else {}
        result[f"budget_{budget}"] = {"per_step": per_step, "replay": replay, "measured": checks}
        print(f"budget {budget}: step  entropy mean/p50  unchanged  exact / edit-sim if stopped")
        for row in per_step:
            print(
                f"  {row['step']:>4} {row['entropy_mean']:>8.3f} {row['entropy_p50']:>8.3f} "
                f"{row['unchanged_from_previous']:>9.2f} {row['exact_if_stopped_here']:>9.3f} "
                f"{row['edit_sim_if_stopped_here']:>6.3f}"
            )
        print(f"  {'conf':>6} {'stab':>4} {'steps':>6} {'early':>6} {'exact':>6} {'edit':>6}")
        for row in replay:
            print(
                f"  {row['confidence_threshold']:>6} {row['stability_threshold']:>4} {row['steps_mean']:>6.2f} "
                f"{row['stopped_early']:>6.2f} {row['exact']:>6.3f} {row['edit_sim']:>6.3f}"
            )
        for pair, row in checks.items():
            print(f"  measured {pair}: {row}")
    result["load_average_before"] = load_before
    result["load_average_after"] = os.getloadavg()[0]
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
