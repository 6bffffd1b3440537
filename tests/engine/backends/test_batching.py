"""Jobs with different prompts denoised together (one decoder forward per step) give the results each gets alone:
same tokens, steps and finish reason, near-equal confidence; eager, through the static-shape (CUDA-graph) step run
without capturing, and through `Engine.run_batch`."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest
import torch

from diffusion_copilot.engine import Engine, FinishReason, Job, StepControl, load_checkpoint
from diffusion_copilot.engine.backends.local.denoise import Denoiser
from diffusion_copilot.engine.backends.local.options import EngineOptions
from diffusion_copilot.engine.backends.local.packed_prefix import PackedPrefix
from diffusion_copilot.engine.backends.local.prefix_cache import PrefixCache
from diffusion_copilot.engine.backends.local.sampler import SamplerParams
from diffusion_copilot.engine.hf_internals import with_cache
from diffusion_copilot.engine.kernels.cuda_graphs import GraphBuckets, StepGraphs

BUCKETS = GraphBuckets(canvas_lengths=(16, 32), prefix_lengths=(16, 64), max_batch=8)


def _prompt(length: int, seed: int) -> tuple[int, ...]:
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randint(3, 1000, (length,), generator=generator).tolist())


# Prompt lengths on both sides of the tiny model's sliding window (16); pins, a seed canvas, alternatives and
# step caps differ per job.
JOBS = (
    Job(prompt_ids=_prompt(8, 1), canvas_length=16, max_steps=5, seed=11),
    Job(prompt_ids=_prompt(40, 2), canvas_length=16, max_steps=3, seed=12, pins=((0, 500), (7, 501))),
    Job(prompt_ids=_prompt(23, 3), canvas_length=16, max_steps=6, seed=13, alternatives=2),
    Job(prompt_ids=_prompt(13, 4), canvas_length=16, max_steps=4, seed=14, seed_canvas=tuple(range(100, 116))),
)


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path):
    return load_checkpoint(str(tiny_checkpoint), device="cpu").model


def _assert_same(batched, alone) -> None:
    assert batched.error is None and alone.error is None
    assert batched.finish_reason == alone.finish_reason
    assert len(batched.timings.step_ms) == len(alone.timings.step_ms)
    assert [c.token_ids for c in batched.canvases] == [c.token_ids for c in alone.canvases]
    assert [c.steps for c in batched.canvases] == [c.steps for c in alone.canvases]
    for mine, theirs in zip(batched.canvases, alone.canvases, strict=True):
        torch.testing.assert_close(torch.tensor(mine.confidence), torch.tensor(theirs.confidence))


@pytest.mark.parametrize("together", [False, True], ids=["prefill-alone", "prefill-together"])
@pytest.mark.parametrize("static", [False, True], ids=["eager", "static-step"])
def test_batched_jobs_match_running_alone(model, static: bool, together: bool):
    params = SamplerParams.from_generation_config(model.generation_config)
    alone = [Denoiser(model, params).run(job) for job in JOBS]
    graphs = StepGraphs(model, BUCKETS, capture=False) if static else None
    batched = Denoiser(model, params, graphs=graphs, prefill_together=together).run_batch(JOBS)
    if graphs is not None:
        (shape,) = graphs.graphs  # the batched step went through the static buffers
        assert shape.batch == 5
    for mine, theirs in zip(batched, alone, strict=True):
        _assert_same(mine, theirs)
    assert [r.finish_reason for r in batched] == [FinishReason.STEP_CAP] * len(JOBS)
    assert [len(r.timings.step_ms) for r in batched] == [5, 3, 6, 4]  # a capped job stops being stepped


@pytest.mark.parametrize("static", [False, True], ids=["eager", "static-step"])
def test_batched_step_gives_each_prompts_own_logits(model, static: bool):

    params = SamplerParams.from_generation_config(model.generation_config)
    graphs = StepGraphs(model, BUCKETS, capture=False) if static else None
    denoiser = Denoiser(model, params, graphs=graphs)
    prompts = [_prompt(length, length) for length in (6, 40, 19)]
    vocab = model.config.text_config.vocab_size
    generator = torch.Generator().manual_seed(3)
    canvas = torch.randint(3, 1000, (3, 16), generator=generator)
    sc_logits = torch.randn(3, 16, vocab, generator=generator)
    with torch.inference_mode():
        caches = [denoiser.prefill.one(prompt, 1)[0] for prompt in prompts]
        positions = torch.stack([torch.arange(len(p), len(p) + 16) for p in prompts])
        step = denoiser.decoder_step(PackedPrefix.pack(caches, model.config.text_config.layer_types), positions, 3)
        for sc in (None, sc_logits):
            batched = step(canvas, sc).clone()
            for row, cache in enumerate(caches):
                alone = model(
                    decoder_input_ids=canvas[row : row + 1],
                    self_conditioning_logits=None if sc is None else sc[row : row + 1],
                    **with_cache(cache),
                    decoder_position_ids=positions[row : row + 1],
                ).logits
                torch.testing.assert_close(batched[row : row + 1], alone, rtol=1e-5, atol=1e-5)
    assert bool(graphs.graphs) if graphs is not None else True


def test_packed_prefix_masks_each_rows_padding(model):
    params = SamplerParams.from_generation_config(model.generation_config)
    denoiser = Denoiser(model, params)
    with torch.inference_mode():
        caches = [denoiser.prefill.one(_prompt(length, 0), batch)[0] for length, batch in ((5, 1), (30, 2))]
    prefix = PackedPrefix.pack(caches, model.config.text_config.layer_types)
    assert prefix.row_lengths == {"full_attention": [5, 30, 30], "sliding_attention": [5, 15, 15]}
    full = prefix.masks(4)["full_attention"]  # [rows, 1, canvas, 30 + 4]
    assert full.shape == (3, 1, 4, 34)
    assert full[0, 0, 0].tolist() == [True] * 5 + [False] * 25 + [True] * 4
    assert bool(full[1:].all())


def _assert_same_cache(mine, theirs) -> None:
    for a, b in zip(mine.layers, theirs.layers, strict=True):
        assert a.keys.shape == b.keys.shape and a.get_seq_length() == b.get_seq_length()
        torch.testing.assert_close(a.keys, b.keys)
        torch.testing.assert_close(a.values, b.values)


def test_prompts_encoded_together_get_the_caches_and_snapshots_of_encoding_alone(model):
    params = SamplerParams.from_generation_config(model.generation_config)
    prompts = [_prompt(length, length) for length in (40, 9, 23, 17)]  # around the sliding window (16)
    together = Denoiser(model, params, PrefixCache(lag=4))
    alone = Denoiser(model, params, PrefixCache(lag=4))
    with torch.inference_mode():
        caches = together.prefill.together(prompts)
        for prompt, cache in zip(prompts, caches, strict=True):
            _assert_same_cache(cache, alone.prefill.one(prompt, 1)[0])
    assert list(together.prefix_cache.entries) == list(alone.prefix_cache.entries)  # snapshots 4 tokens short
    for key, snapshot in together.prefix_cache.entries.items():
        assert len(key) == snapshot.layers[0].get_seq_length()
        _assert_same_cache(snapshot, alone.prefix_cache.entries[key])


def test_a_batch_encodes_unknown_prompts_together_and_extends_known_ones(model):
    params = SamplerParams.from_generation_config(model.generation_config)
    denoiser = Denoiser(model, params, PrefixCache(lag=8), prefill_together=True)
    known = JOBS[1].prompt_ids
    with torch.inference_mode():
        denoiser.prefill.one(known[:-3], 1)  # stores a snapshot of its first 37 - 8 (the lag) tokens
    calls = []
    together = denoiser.prefill.together
    denoiser.prefill.together = lambda prompts: calls.append(prompts) or together(prompts)
    batched = denoiser.run_batch(JOBS)
    assert calls == [[JOBS[0].prompt_ids, JOBS[2].prompt_ids, JOBS[3].prompt_ids]]
    assert [r.timings.cached_tokens for r in batched] == [0, 29, 0, 0]
    for mine, job in zip(batched, JOBS, strict=True):
        _assert_same(mine, Denoiser(model, params).run(job))


def test_no_memory_to_encode_together_encodes_one_at_a_time(model, caplog: pytest.LogCaptureFixture):
    params = SamplerParams.from_generation_config(model.generation_config)
    denoiser = Denoiser(model, params, prefill_together=True)

    def out_of_memory(prompts):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    denoiser.prefill.together = out_of_memory
    for mine, job in zip(denoiser.run_batch(JOBS), JOBS, strict=True):
        _assert_same(mine, Denoiser(model, params).run(job))
    assert "one at a time" in caplog.text


def test_converged_jobs_leave_the_batch_with_their_own_result(converging_checkpoint: Path):
    model = load_checkpoint(str(converging_checkpoint), device="cpu").model
    params = dataclasses.replace(SamplerParams.from_generation_config(model.generation_config), confidence_threshold=5)
    jobs = [
        Job(prompt_ids=_prompt(9, 5), canvas_length=16, max_steps=30, seed=1),
        Job(prompt_ids=_prompt(30, 6), canvas_length=16, max_steps=1, seed=2),
        Job(prompt_ids=_prompt(17, 7), canvas_length=16, max_steps=30, seed=3, alternatives=2),
    ]
    alone = [Denoiser(model, params).run(job) for job in jobs]
    batched = Denoiser(model, params).run_batch(jobs)
    for mine, theirs in zip(batched, alone, strict=True):
        _assert_same(mine, theirs)
    assert batched[0].finish_reason is FinishReason.CONVERGED
    assert batched[1].finish_reason is FinishReason.STEP_CAP
    assert len(batched[0].timings.step_ms) < 30


@pytest.fixture(scope="module")
def engine(tiny_checkpoint: Path) -> Engine:
    return Engine.load(str(tiny_checkpoint), device="cpu", options=EngineOptions(buckets=GraphBuckets(max_batch=3)))


def test_engine_run_batch_runs_what_it_can_together_and_errors_alone(engine: Engine):
    jobs = [
        JOBS[0],
        Job(prompt_ids=()),  # invalid: an error for it alone
        Job(prompt_ids=_prompt(12, 8), canvas_length=16, max_steps=3, max_canvases=2, seed=3),  # runs on its own
        JOBS[2],  # two rows: with max_batch 3 the next job goes into a second forward batch
        JOBS[1],
        Job(prompt_ids=_prompt(20, 9), canvas_length=32, max_steps=2, seed=4),  # another canvas length
    ]
    results = engine.run_batch(jobs)
    assert results[1].error == "empty prompt"
    for index in (0, 2, 3, 4, 5):
        _assert_same(results[index], engine.run(jobs[index]))


def test_cancelling_one_job_leaves_the_others(engine: Engine):
    cancel = threading.Event()

    def on_draft(step: int, drafts: list[list[int]]) -> None:
        if step == 2:
            cancel.set()

    controls = [None, StepControl(is_cancelled=cancel.is_set, on_draft=on_draft), None]
    jobs = [JOBS[0], JOBS[2], JOBS[1]]
    results = engine.run_batch(jobs, controls)
    assert results[1].finish_reason is FinishReason.CANCELLED and not results[1].canvases
    assert len(results[1].timings.step_ms) == 2
    _assert_same(results[0], engine.run(jobs[0]))
    _assert_same(results[2], engine.run(jobs[2]))


def test_prompts_are_encoded_together_where_the_options_say(tiny_checkpoint: Path):
    loaded = load_checkpoint(str(tiny_checkpoint), device="cpu")
    assert not Engine(loaded).denoiser.prefill.is_together  # on the CPU one pass each is as fast
    assert Engine(loaded, EngineOptions(prefill_together=True)).denoiser.prefill.is_together
    assert not Engine(loaded, EngineOptions(prefill_together=True, eager=True)).denoiser.prefill.is_together


def test_each_job_reports_its_result_when_it_is_done(model):
    params = SamplerParams.from_generation_config(model.generation_config)
    early: list[tuple[int, object]] = []
    controls = [StepControl(on_result=lambda result, i=i: early.append((i, result))) for i in range(len(JOBS))]
    batched = Denoiser(model, params).run_batch(JOBS, controls)
    assert [i for i, _ in early] == [1, 3, 0, 2]  # by step cap: 3, 4, 5, 6
    assert all(result is batched[i] for i, result in early)


def test_early_results_carry_what_the_engine_adds(engine: Engine):
    from diffusion_copilot.engine import PromptParts

    early = {}
    parts = [PromptParts(path="a.py", language="python", prefix=prefix, suffix="\n") for prefix in ("x = 1\n", "de")]
    jobs = [Job(prompt_ids=(), canvas_length=16, max_steps=steps, seed=1) for steps in (2, 5)]
    controls = [StepControl(on_result=lambda result, i=i: early.__setitem__(i, result)) for i in range(2)]
    results = engine.complete_batch(parts, jobs, controls)
    assert early == dict(enumerate(results))  # with the healed prompt text and the queue time set
