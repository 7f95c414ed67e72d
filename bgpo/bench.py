"""Benchmarks: scripts that measure and write CSVs (never timed unit tests).

``bgpo bench sampler``: decoding speed over decoding modes (KV cache ``none`` / ``prefix`` / ``dual`` × LLaDA's
schedule or confidence-threshold decoding) × batch sizes × response lengths, side by side in one run. With
the default pipeline's trained models (``--config``): tokens/s, seconds per rollout and the task accuracy of
the same generations on each task's benchmark (:func:`bench_sampler_task`), and the speed/accuracy targets
(:func:`sampler_targets`). Without: random weights and random prompts, with the token agreement with exact
decoding (:func:`bench_sampler`).

``bgpo bench memory``: one training step per (method, n_t), each in a fresh process: peak memory (saved for
backward, RSS, CUDA) and the step time split into rollout / prepare / likelihood-and-backward / optimiser (Fig. 1).

``bgpo bench chunks``: BGPO's MC samples per forward/backward pass k against memory and time, side by side in
one process with BGPO at n_t = 1 and VRPO-OL, and the speed targets of issue 8 as ratios.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from .models import DiffusionLM
from .sampler import SamplerConfig, generate
from .tasks import Task
from .testing import random_tokens


def _time(fn, repeats: int, device: torch.device) -> tuple[float, object]:
    """Best-of-``repeats`` wall time of ``fn()`` (after one warm-up call) and its last result."""
    result = fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best, result


# The decoding modes compared: (KV cache, confidence threshold). 0.9 is Fast-dLLM's default threshold.
SAMPLER_MODES: tuple[tuple[str, float | None], ...] = (
    ("none", None),
    ("prefix", None),
    ("dual", None),
    ("none", 0.9),
    ("prefix", 0.9),
    ("dual", 0.9),
    ("dual", 0.7),  # lower thresholds: more tokens per step, for tasks where 0.9 leaves speed on the table
    ("dual", 0.5),
)


def mode_name(cache: str, threshold: float | None) -> str:
    """The ``mode`` column: the cache, plus ``+t<threshold>`` for threshold decoding (``dual+t0.9``)."""
    return cache if threshold is None else f"{cache}+t{threshold:g}"


def parse_mode(name: str) -> tuple[str, float | None]:
    """Inverse of :func:`mode_name` (``prefix+t0.9`` → ``("prefix", 0.9)``), for command-line mode lists."""
    cache, _, threshold = name.partition("+t")
    SamplerConfig(gen_length=1, block_length=1, steps=1, cache=cache)  # a typo names the valid caches
    return cache, float(threshold) if threshold else None


def bench_sampler(
    model: DiffusionLM,
    *,
    batch_sizes: Sequence[int],
    lengths: Sequence[int],
    block_length: int,
    prompt_length: int = 32,
    steps_ratio: float = 0.5,
    modes: Sequence[tuple[str, float | None]] = SAMPLER_MODES,
    repeats: int = 2,
    seed: int = 0,
) -> pd.DataFrame:
    """Time greedy decoding of random prompts for each decoding mode × batch size × response length.

    Args:
        model: the model (on its device).
        batch_sizes: prompts per batch.
        lengths: response lengths L (multiples of ``block_length``).
        block_length: the block length.
        prompt_length: tokens per random prompt.
        steps_ratio: steps = L × ratio (d1 trains with L/2, SPEC §6), rounded to a multiple of the blocks.
        modes: (cache, threshold) pairs; the first is the reference the others' token agreement is measured on.
        repeats: timed repetitions per point (the best is kept).
        seed: seed of the random prompts.

    Returns:
        One row per (mode, batch, L): seconds, tokens/s, sequences/s, model row-passes and positions run,
        and the token agreement with the first mode.
    """
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for length in lengths:
        blocks = length // block_length
        steps = max(blocks, round(length * steps_ratio / blocks) * blocks)
        for batch in batch_sizes:
            prompts = random_tokens(model, (batch, prompt_length), gen).to(device)
            reference = None
            for cache, thr in modes:
                cfg = SamplerConfig(
                    gen_length=length, block_length=block_length, steps=steps, threshold=thr, cache=cache
                )

                def run(cfg: SamplerConfig = cfg, prompts: torch.Tensor = prompts):
                    return generate(model, prompts, None, cfg, mask_token_id=model.mask_token_id)

                seconds, out = _time(run, repeats, device)
                if reference is None:
                    reference = out.responses
                rows.append(
                    {
                        "mode": mode_name(cache, thr),
                        "cache": cache,
                        "threshold": thr,
                        "batch": batch,
                        "gen_length": length,
                        "block_length": block_length,
                        "steps": steps,
                        "seconds": seconds,
                        "tokens_per_s": batch * length / seconds,
                        "sequences_per_s": batch / seconds,
                        "forward_rows": out.forward_rows,
                        "forward_tokens": out.forward_tokens,
                        "agreement_with_exact": (out.responses == reference).double().mean().item(),
                        "device": str(device),
                        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
                        "parameters": model.num_parameters(),
                    }
                )
    return pd.DataFrame(rows)


def bench_sampler_task(
    model: DiffusionLM,
    task: Task,
    *,
    gen_length: int,
    block_length: int,
    steps: int,
    modes: Sequence[tuple[str, float | None]] = SAMPLER_MODES,
    batch_sizes: Sequence[int] = (16, 64),
    length_factors: Sequence[int] = (1, 2),
    repeats: int = 3,
    limit: int | None = None,
    split: str = "test",
) -> pd.DataFrame:
    """Speed and accuracy of each decoding mode on a trained model's own benchmark, side by side.

    For each response length (the benchmark's ``gen_length`` × factor, same block length and steps per token)
    and batch size, every mode decodes the task's ``split`` greedily (``bgpo.evaluation.complete``, as
    ``bgpo evaluate`` does), ``repeats`` + 1 times in interleaved rounds (the first round is a warm-up whose
    completions are graded; greedy decoding repeats itself exactly), so slow drift of a shared machine hits
    every mode alike. The time is the median of the timed rounds.

    Returns:
        One row per (mode, gen_length, batch): ``mode``, ``cache``, ``threshold``, ``task``, ``seconds``,
        ``tokens_per_s`` (responses × L / seconds), ``seconds_per_rollout`` (seconds per response), the same
        on this process's CPU time (``cpu_seconds``, ``tokens_per_cpu_s``: robust to other jobs on the machine),
        ``accuracy`` (the task's headline metric in %, e.g. cell accuracy for Sudoku), the model passes
        (``forward_rows``, ``forward_tokens``), and ``speedup`` / ``accuracy_change`` against the ``none`` mode
        of the same length and batch (when ``modes`` has it).
    """
    from .evaluation import complete, grade_completions
    from .sampler import block_schedule_problem
    from .tasks import render_prompt

    device = next(model.parameters()).device
    examples = task.load(split)[:limit]
    prompts = [render_prompt(model.tokenizer, task.message(e)) for e in examples]
    rows = []
    for factor in length_factors:
        length, total_steps = gen_length * factor, steps * factor
        problem = block_schedule_problem(length, block_length, total_steps)
        if problem is not None:
            raise ValueError(f"length factor {factor}: {problem}")
        for batch in batch_sizes:
            configs = [
                SamplerConfig(gen_length=length, block_length=block_length, steps=total_steps, cache=c, threshold=t)
                for c, t in modes
            ]
            times: list[list[float]] = [[] for _ in configs]
            cpu_times: list[list[float]] = [[] for _ in configs]
            completions: list[list[str]] = []
            work: list[tuple[int, int]] = []
            for round_ in range(repeats + 1):
                for i, cfg in enumerate(configs):
                    passes: dict[str, int] = {}
                    _sync(str(device))
                    start, cpu_start = time.perf_counter(), time.process_time()
                    out = complete(model, prompts, cfg, batch_size=batch, work=passes)
                    _sync(str(device))
                    if round_ == 0:
                        completions.append(out)
                        work.append((passes["forward_rows"], passes["forward_tokens"]))
                    else:
                        times[i].append(time.perf_counter() - start)
                        cpu_times[i].append(time.process_time() - cpu_start)
            per_mode = zip(modes, completions, times, cpu_times, work, strict=True)
            for (cache, thr), out, spent, cpu_spent, (row_passes, positions) in per_mode:
                _, metrics = grade_completions(task, examples, prompts, out)
                seconds = float(pd.Series(spent).median()) if spent else float("nan")
                cpu_seconds = float(pd.Series(cpu_spent).median()) if cpu_spent else float("nan")
                rows.append(
                    {
                        "mode": mode_name(cache, thr),
                        "task": task.name,
                        "cache": cache,
                        "threshold": thr,
                        "batch": batch,
                        "gen_length": length,
                        "block_length": block_length,
                        "steps": total_steps,
                        "n": len(examples),
                        "seconds": seconds,
                        "tokens_per_s": len(examples) * length / seconds,
                        "seconds_per_rollout": seconds / len(examples),
                        # CPU time of this process: on a shared machine, wall time also counts waiting for a core
                        "cpu_seconds": cpu_seconds,
                        "tokens_per_cpu_s": len(examples) * length / cpu_seconds,
                        "accuracy": 100 * metrics.get(task.metric, metrics["accuracy"]),
                        "metric": task.metric if task.metric in metrics else "accuracy",
                        "forward_rows": row_passes,
                        "forward_tokens": positions,
                        "repeats": repeats,
                        "device": str(device),
                        "threads": torch.get_num_threads(),
                        "parameters": model.num_parameters(),
                    }
                )
    frame = pd.DataFrame(rows)
    exact = frame[(frame["cache"] == "none") & frame["threshold"].isna()]
    if len(exact):
        ref = frame.merge(exact, on=["gen_length", "batch"], suffixes=("", "_ref"), how="left")
        frame["speedup"] = (ref["tokens_per_s"] / ref["tokens_per_s_ref"]).to_numpy()
        frame["cpu_speedup"] = (ref["tokens_per_cpu_s"] / ref["tokens_per_cpu_s_ref"]).to_numpy()
        frame["accuracy_change"] = (ref["accuracy"] - ref["accuracy_ref"]).to_numpy()
    return frame


def sampler_targets(frame: pd.DataFrame, min_speedup: float = 3.0, max_drop: float = 1.0) -> pd.DataFrame:
    """Issue 19's target per task, length and batch: the fastest mode within ``max_drop`` accuracy points of
    exact decoding, and whether it reaches ``min_speedup`` × exact decoding's tokens/s.

    Args:
        frame: :func:`bench_sampler_task` rows (with ``speedup`` and ``accuracy_change``).

    Returns:
        One row per (task, gen_length, batch): ``best_mode``, its ``speedup`` and ``accuracy_change``, the
        exact and best accuracies, and ``met``.
    """
    rows = []
    for (task, length, batch), part in frame.groupby(["task", "gen_length", "batch"], sort=False):
        exact = part[part["mode"] == "none"]
        others = part[(part["mode"] != "none") & (part["accuracy_change"] >= -max_drop)]
        best = others.sort_values("speedup", ascending=False).head(1)
        found = len(best) > 0
        rows.append(
            {
                "task": task,
                "gen_length": length,
                "batch": batch,
                "best_mode": best["mode"].iloc[0] if found else None,
                "speedup": float(best["speedup"].iloc[0]) if found else float("nan"),
                "cpu_speedup": float(best["cpu_speedup"].iloc[0]) if found and "cpu_speedup" in best else float("nan"),
                "accuracy_none": float(exact["accuracy"].iloc[0]) if len(exact) else float("nan"),
                "accuracy_best": float(best["accuracy"].iloc[0]) if found else float("nan"),
                "accuracy_change": float(best["accuracy_change"].iloc[0]) if found else float("nan"),
                "target_speedup": min_speedup,
                "target_max_drop": max_drop,
                "met": bool(found and best["speedup"].iloc[0] >= min_speedup),
                # 0% in exact decoding (a base at a length it was not trained for): "≤ 1 point lower" then says nothing
                "accuracy_informative": bool(len(exact) and exact["accuracy"].iloc[0] > 0),
            }
        )
    return pd.DataFrame(rows)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` (creating folders)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


# ------------------------------------------------------------------------------------------- memory
def _bench_model(
    preset: str,
    model_path: str | None,
    overrides: dict | None,
    device: str,
    dtype: str,
    seed: int,
    gradient_checkpointing: bool = False,
):
    """The model of a memory/speed point: a saved one, or random weights from ``preset``."""
    from .adapters import enable_activation_checkpointing
    from .models import build_model, load_model
    from .testing import toy_tokenizer

    torch_dtype = getattr(torch, dtype)
    if model_path:
        model = load_model(model_path, dtype=torch_dtype, device=device)
    else:
        with torch.device(device):
            model = build_model(preset, toy_tokenizer(), seed=seed, dtype=torch_dtype, **(overrides or {}))
    if gradient_checkpointing:
        enable_activation_checkpointing(model.backbone)
    return model.to(device).train()


def _bench_method(method: str, n_t: int, samples_per_chunk: int):
    """``method`` with ``n_t`` and ``samples_per_chunk`` set where its config has them (no per-method code)."""
    import dataclasses

    from .methods import build_method, get_method_class

    fields = {f.name for f in dataclasses.fields(get_method_class(method).Config)}
    config = {key: value for key, value in (("n_t", n_t), ("samples_per_chunk", samples_per_chunk)) if key in fields}
    return build_method(method, config), config


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _update(
    algorithm, model, batch, seed: int, micro_batch_size: int | None, params, device: str, reset_peaks: bool = True
) -> dict:
    """One on-policy update without the optimiser: prepare at θ_old, then likelihood + backward (tracked; with
    ``reset_peaks`` False the RSS and CUDA peaks stay those of the caller's window)."""
    from .memory import track_memory
    from .methods import accumulate_gradients

    gen = torch.Generator(device=device).manual_seed(seed)
    _sync(device)
    start = time.perf_counter()
    state = algorithm.prepare(model, batch, gen, on_policy=True)
    _sync(device)
    prepare = time.perf_counter() - start
    with track_memory(exclude=params, reset_peaks=reset_peaks) as memory:
        start = time.perf_counter()
        accumulate_gradients(algorithm, model, batch, state, micro_batch_size=micro_batch_size)
        _sync(device)
        update = time.perf_counter() - start
    return {"prepare_s": prepare, "likelihood_backward_s": update, "memory": memory}


def _random_rollout(model, responses, prompt_length, length, block_length, rollout_steps, seed, device):
    """Random prompts, then the shared block-wise sampler at T = 1: the batch of one training step."""
    from .batch import RolloutBatch

    gen = torch.Generator(device=device).manual_seed(seed)
    prompts = random_tokens(model, (responses, prompt_length), gen)
    sampler = SamplerConfig(gen_length=length, block_length=min(block_length, length), steps=rollout_steps or length,
                            temperature=1.0)  # fmt: skip
    _sync(device)
    start = time.perf_counter()
    out = generate(model, prompts, None, sampler, mask_token_id=model.mask_token_id, generator=gen)
    _sync(device)
    rollout = time.perf_counter() - start
    batch = RolloutBatch(
        prompt_ids=prompts, prompt_mask=torch.ones_like(prompts, dtype=torch.bool), response_ids=out.responses,
        advantages=torch.randn(responses, generator=gen, device=device).double(), mask_token_id=model.mask_token_id,
    )  # fmt: skip
    return batch, rollout


def memory_point(
    *,
    method: str,
    n_t: int,
    preset: str = "nano",
    model_path: str | None = None,
    overrides: dict | None = None,
    responses: int = 16,
    prompt_length: int = 32,
    length: int = 64,
    block_length: int = 32,
    rollout_steps: int | None = None,
    samples_per_chunk: int = 1,
    micro_batch_size: int | None = None,
    optimizer: str = "adamw",
    device: str = "cpu",
    dtype: str = "float32",
    seed: int = 0,
    repeats: int = 1,
    gradient_checkpointing: bool = False,
) -> dict:
    """One training step of ``method`` at ``n_t`` on random prompts: times and peak memory.

    The step is a rollout (the block-wise sampler at T = 1), ``prepare`` at θ_old, the method's likelihood terms
    and backward (the shared driver, on-policy), and an optimiser step (AdamW, its states included in the CUDA
    peak and the RSS, or none). With ``repeats`` > 1 the update is run that many times and the times are medians
    (the memory peaks are the largest). Peaks: bytes saved for backward during likelihood-and-backward; the peak
    RSS and ``torch.cuda.max_memory_allocated`` (on a GPU) over the whole step, rollout to optimiser step
    (``rss_scope`` ``step``; ``process``, the process's lifetime peak, where Linux's peak-RSS reset is not
    allowed: meaningful in a fresh process).
    """
    import statistics

    from .memory import read_peak_rss, reset_peak_rss

    model = _bench_model(preset, model_path, overrides, device, dtype, seed, gradient_checkpointing)
    algorithm, config = _bench_method(method, n_t, samples_per_chunk)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-6) if optimizer == "adamw" else None
    # One window for the whole step (rollout, prepare, likelihood and backward, optimiser step): the update's own
    # tracking leaves the RSS and CUDA peaks alone.
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    window = reset_peak_rss()
    batch, rollout = _random_rollout(model, responses, prompt_length, length, block_length, rollout_steps, seed,
                                     device)  # fmt: skip
    runs = []
    for _ in range(max(1, repeats)):
        model.zero_grad(set_to_none=True)
        runs.append(_update(algorithm, model, batch, seed, micro_batch_size, params, device, reset_peaks=False))
    start = time.perf_counter()
    if opt is not None:
        opt.step()
        opt.zero_grad(set_to_none=True)
    _sync(device)
    optimiser_time = time.perf_counter() - start
    peak_rss = read_peak_rss(window)  # after the optimiser step: its states are in the peak
    cuda_peak = torch.cuda.max_memory_allocated() if device.startswith("cuda") else None
    return {
        "method": method,
        "n_t": config.get("n_t", 1),
        "samples_per_chunk": config.get("samples_per_chunk", config.get("n_t", 1)),
        "responses": responses,
        "prompt_length": prompt_length,
        "length": length,
        "rollout_s": rollout,
        "prepare_s": statistics.median(r["prepare_s"] for r in runs),
        "likelihood_backward_s": statistics.median(r["likelihood_backward_s"] for r in runs),
        "optimiser_s": optimiser_time,
        "repeats": len(runs),
        "peak_saved_bytes": max(r["memory"].peak_saved_bytes for r in runs),
        "peak_rss_bytes": peak_rss,
        "rss_scope": "step" if window else "process",
        "cuda_peak_bytes": cuda_peak,
        "optimizer": optimizer,
        "gradient_checkpointing": gradient_checkpointing,
        "parameters": model.num_parameters(),
        "dtype": dtype,
        "device": device if not device.startswith("cuda") else torch.cuda.get_device_name(),
    }


def bench_memory(points: Sequence[dict], fresh_process: bool = True) -> pd.DataFrame:
    """Run :func:`memory_point` for each settings dict, each in a fresh Python process by default."""
    import json as _json
    import subprocess
    import sys

    rows = []
    for kwargs in points:
        if not fresh_process:
            rows.append(memory_point(**kwargs))
            continue
        result = subprocess.run(
            [sys.executable, "-m", "bgpo.bench", _json.dumps(kwargs)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"memory point {kwargs} failed:\n{result.stderr[-3000:]}")
        rows.append(_json.loads(result.stdout.strip().splitlines()[-1]))
    return pd.DataFrame(rows)


# -------------------------------------------------------------------------------- chunks and speed targets
def bench_chunks(
    *,
    n_t: int = 16,
    chunks: Sequence[int] = (1, 2, 4, 8, 16),
    reference: tuple[str, int] = ("vrpo_ol", 4),
    rounds: int = 5,
    preset: str = "nano",
    model_path: str | None = None,
    overrides: dict | None = None,
    responses: int = 16,
    prompt_length: int = 32,
    length: int = 64,
    block_length: int = 32,
    micro_batch_size: int | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """BGPO's chunk size k side by side with BGPO at n_t = 1 and a reference method, in one process.

    Configurations: BGPO (n_t, k) for each k in ``chunks``, BGPO (1, 1), and ``reference`` = (method, n_t).
    All share one model and one rollout batch; each round times every configuration once in turn (so drifting
    machine load touches all alike), and times are medians over ``rounds``. Memory is the peak saved for
    backward (and the CUDA peak of the update on a GPU). Returns the per-configuration frame and the targets of
    issue 8: BGPO's time at n_t over n_t × its time at n_t = 1 (target ≤ 1.1), and BGPO at k = 4 over the
    reference (target ≤ 4.4 at no more memory).
    """
    import statistics

    model = _bench_model(preset, model_path, overrides, device, dtype, seed)
    params = [p for p in model.parameters() if p.requires_grad]
    batch, _ = _random_rollout(model, responses, prompt_length, length, block_length, None, seed, device)
    configs = [("bgpo", n_t, k) for k in chunks if k <= n_t] + [("bgpo", 1, 1), (reference[0], reference[1], 1)]
    built = {c: _bench_method(*c)[0] for c in configs}
    times: dict[tuple, list[float]] = {c: [] for c in configs}
    prepares: dict[tuple, list[float]] = {c: [] for c in configs}
    saved: dict[tuple, int] = {}
    cuda: dict[tuple, int | None] = {}
    for round_ in range(rounds + 1):  # round 0 warms up (allocator, kernels)
        for c in configs:
            model.zero_grad(set_to_none=True)
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            run = _update(built[c], model, batch, seed, micro_batch_size, params, device)
            saved[c] = max(saved.get(c, 0), run["memory"].peak_saved_bytes)
            cuda[c] = torch.cuda.max_memory_allocated() if device.startswith("cuda") else None
            if round_:
                times[c].append(run["likelihood_backward_s"])
                prepares[c].append(run["prepare_s"])
    rows = [
        {"method": m, "n_t": n, "samples_per_chunk": k if m == "bgpo" else n,
         "likelihood_backward_s": statistics.median(times[(m, n, k)]),
         "prepare_s": statistics.median(prepares[(m, n, k)]),
         "peak_saved_bytes": saved[(m, n, k)], "cuda_peak_bytes": cuda[(m, n, k)], "rounds": rounds,
         "responses": responses, "length": length, "parameters": model.num_parameters(), "dtype": dtype,
         "device": device if not device.startswith("cuda") else torch.cuda.get_device_name()}
        for (m, n, k) in configs
    ]  # fmt: skip
    frame = pd.DataFrame(rows)

    def row(m: str, n: int, k: int) -> pd.Series:
        return frame[(frame.method == m) & (frame.n_t == n) & (frame.samples_per_chunk == k)].iloc[0]

    memory = "cuda_peak_bytes" if device.startswith("cuda") else "peak_saved_bytes"
    one, full, ref = row("bgpo", 1, 1), row("bgpo", n_t, 1), row(reference[0], reference[1], reference[1])
    targets = [
        {"target": f"bgpo n_t={n_t} k=1 time / ({n_t} x bgpo n_t=1 time)",
         "value": full.likelihood_backward_s / (n_t * one.likelihood_backward_s), "threshold": 1.1},
    ]  # fmt: skip
    if 4 in chunks and n_t >= 4:
        k4 = row("bgpo", n_t, 4)
        targets += [
            {"target": f"bgpo n_t={n_t} k=4 time / {reference[0]} n_t={reference[1]} time",
             "value": k4.likelihood_backward_s / ref.likelihood_backward_s, "threshold": 4.4},
            {"target": f"bgpo n_t={n_t} k=4 {memory} / {reference[0]} n_t={reference[1]} {memory}",
             "value": k4[memory] / ref[memory], "threshold": 1.01},
        ]  # fmt: skip
    target_frame = pd.DataFrame(targets)
    target_frame["met"] = target_frame.value <= target_frame.threshold
    return frame, target_frame


if __name__ == "__main__":  # one fresh-process measurement: python -m bgpo.bench '<json kwargs>'
    import json as _json
    import sys

    print(_json.dumps(memory_point(**_json.loads(sys.argv[1]))))
