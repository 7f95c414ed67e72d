"""``bgpo evaluate``: decode a task's prompts with the sampler, grade the completions, write the results.

For each task: prompts rendered with the model's chat template (or plainly for small local tokenizers),
left-padded batches decoded with LLaDA's block-wise sampler (greedy by default: pass@1), each response cut at
its first EOS/EoT and decoded, graded by the task, aggregated by the task's evaluate metric. Outputs:

* ``<out_dir>/<task>.jsonl``: one line per example: the benchmark row in the task's data format, ``id``,
  ``model_input`` (the rendered prompt), ``completion``, ``reward``, ``correct`` and the grade's fields
  (:mod:`bgpo.grading`); ``bgpo grade <task> <task>.jsonl`` rescores it to the same metrics;
* ``<out_dir>/metrics.csv``: tidy, one row per task × metric, with the decoding settings (the sampler's KV
  ``cache`` mode and confidence ``threshold`` included) and the evaluation
  protocol (:mod:`bgpo.protocols`; ``custom`` for the command line's own settings) and, for code tasks, the
  ``sandbox`` backend that graded them.

With temperature > 0 every example has its own generator seeded from (seed, index), so results do not depend
on the batch size or the order of decoding. Nor does padding: a model that attends to its padding (LLaDA's
remote code ignores the attention mask) decodes prompts of one token length per batch, unpadded.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .grading import scored_record, task_metrics
from .kv_cache import attends_to_padding
from .models import DiffusionLM
from .protocols import CUSTOM, EvalSettings
from .provenance import machine
from .sampler import SamplerConfig, generate
from .tasks import Example, Task, render_prompt
from .tasks.code_exec import sandbox_backends

__all__ = [
    "complete",
    "decode_responses",
    "encode_prompts",
    "evaluate_task",
    "grade_completions",
    "run_evaluation",
    "task_metrics",
]


def encode_prompts(model: DiffusionLM, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompt ids (N, P) and mask (N, P); the prompt text already holds any special tokens."""
    return _left_pad(model, _token_rows(model, prompts))


def _token_rows(model: DiffusionLM, prompts: Sequence[str]) -> list[list[int]]:
    return [model.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]


def _left_pad(model: DiffusionLM, rows: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), model.pad_token_id, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row) :] = torch.tensor(row)
            mask[i, width - len(row) :] = True
    return ids, mask


def stop_ids(model: DiffusionLM) -> list[int]:
    """EOS and, if the model has one, EoT: where a response ends."""
    return [model.eos_token_id] + ([model.eot_token_id] if model.eot_token_id is not None else [])


def decode_responses(model: DiffusionLM, responses: torch.Tensor) -> list[str]:
    """Response texts, each cut at its first EOS/EoT, special tokens dropped."""
    stops = torch.tensor(stop_ids(model))
    texts = []
    for row in responses.cpu():
        is_stop = torch.isin(row, stops)
        end = int(is_stop.long().argmax()) if bool(is_stop.any()) else row.numel()
        texts.append(model.tokenizer.decode(row[:end].tolist(), skip_special_tokens=True))
    return texts


def _batches(model: DiffusionLM, rows: Sequence[list[int]], batch_size: int) -> list[list[int]]:
    """The prompts' indices (``rows``: their token ids) in decoding batches: in order; for a model that attends to
    padding (LLaDA's remote code), only prompts of one token length share a batch, so that none is padded and its
    completion does not depend on the batch size or on its batch mates."""
    if not attends_to_padding(model):
        return [list(range(s, min(s + batch_size, len(rows)))) for s in range(0, len(rows), batch_size)]
    by_length: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        by_length.setdefault(len(row), []).append(i)
    return [group[s : s + batch_size] for group in by_length.values() for s in range(0, len(group), batch_size)]


def complete(
    model: DiffusionLM,
    prompts: Sequence[str],
    config: SamplerConfig,
    *,
    batch_size: int = 16,
    seed: int = 0,
    offset: int = 0,
    work: dict[str, int] | None = None,
) -> list[str]:
    """Decode completions for rendered prompts, ``batch_size`` at a time.

    Args:
        model: the model (its device is used).
        prompts: rendered prompt texts.
        config: the sampler settings.
        batch_size: prompts per decoding batch.
        seed: with ``offset + i``, seeds the generator of prompt i (used only at temperature > 0).
        offset: index of the first prompt in a larger run, so that seeds do not repeat across calls.
        work: if given, ``forward_rows`` and ``forward_tokens`` (the sampler's work) are added to it.
    """
    device = next(model.parameters()).device
    completions: list[str] = [""] * len(prompts)
    rows = _token_rows(model, prompts)  # once: the batches and the padding both need them
    for batch in _batches(model, rows, batch_size):
        ids, mask = _left_pad(model, [rows[i] for i in batch])
        generators = [torch.Generator(device=device).manual_seed(seed * 1_000_003 + offset + i) for i in batch]
        out = generate(
            model,
            ids.to(device),
            mask.to(device),
            config,
            mask_token_id=model.mask_token_id,
            eos_token_ids=stop_ids(model),
            generator=generators,
        )
        for i, text in zip(batch, decode_responses(model, out.responses), strict=True):
            completions[i] = text
        if work is not None:
            work["forward_rows"] = work.get("forward_rows", 0) + out.forward_rows
            work["forward_tokens"] = work.get("forward_tokens", 0) + out.forward_tokens
    return completions


def evaluate_task(
    model: DiffusionLM,
    task: Task,
    examples: Sequence[Example],
    config: SamplerConfig,
    *,
    batch_size: int = 16,
    seed: int = 0,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Decode, grade and aggregate one task; returns per-example records and the metric values."""
    prompts = [render_prompt(model.tokenizer, task.message(e)) for e in examples]
    was_training = model.training
    model.eval()
    try:
        completions = complete(model, prompts, config, batch_size=batch_size, seed=seed)
    finally:
        model.train(was_training)
    return grade_completions(task, examples, prompts, completions)


def grade_completions(
    task: Task, examples: Sequence[Example], prompts: Sequence[str], completions: Sequence[str]
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Grade decoded completions of ``examples`` (rendered as ``prompts``): per-example records and the metrics.

    Separate from decoding so that a benchmark can time the decoding alone (``bgpo bench sampler``).
    """
    grades = task.grade(completions, examples)
    records = [
        scored_record({**task.data_row(e), "id": e.id, "model_input": p}, c, g)
        for e, p, c, g in zip(examples, prompts, completions, grades, strict=True)
    ]
    return records, task_metrics(task, records)


def write_results(
    out_dir: Path,
    task: Task,
    split: str,
    records: Sequence[dict[str, Any]],
    metrics: dict[str, float],
    config: SamplerConfig,
    extra: dict[str, Any],
    protocol: str = CUSTOM,
) -> list[dict[str, Any]]:
    """Write ``<task>.jsonl`` and return the task's tidy metric rows (with the protocol that produced them)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / f"{task.name}.jsonl", "w") as f:
        for record in records:
            f.write(json.dumps(record, default=str) + "\n")
    # cache and threshold too: approximate (cached, parallel) decoding is never mixed silently with exact numbers.
    recorded = ("gen_length", "block_length", "steps", "temperature", "cache", "threshold", "remasking")
    settings = {k: v for k, v in asdict(config).items() if k in recorded}
    if task.name in (backends := sandbox_backends([task])):  # code tasks: the sandbox that graded them
        settings["sandbox"] = backends[task.name]
    return [
        {
            "task": task.name,
            "split": split,
            "metric": name,
            "value": value,
            "n": len(records),
            "protocol": protocol,
            **settings,
            **extra,
        }
        for name, value in metrics.items()
    ]


def run_evaluation(
    model: DiffusionLM,
    tasks: Sequence[Task],
    out_dir: Path,
    config: SamplerConfig,
    *,
    split: str = "test",
    limit: int | None = None,
    random_subset: bool = False,
    batch_size: int = 16,
    seed: int = 0,
    extra: dict[str, Any] | None = None,
    protocol: str = CUSTOM,
    settings: Mapping[str, EvalSettings] | None = None,
) -> pd.DataFrame:
    """Evaluate every task and write per-example JSONL files plus ``metrics.csv`` (see the module docstring).

    ``limit`` keeps the first examples, or with ``random_subset`` a random subset drawn with ``seed`` (d1
    evaluates a random 256 of the 500 Sudoku puzzles). ``settings`` (task name → settings, e.g. a protocol's)
    replaces ``config``'s length, block, steps and temperature and ``limit``/``random_subset`` for its tasks;
    ``protocol`` is recorded in every row.
    """
    rows = []
    for task in tasks:
        task_config, task_limit, task_random = config, limit, random_subset
        if settings is not None and task.name in settings:
            own = settings[task.name]
            task_config = replace(
                config,
                gen_length=own.gen_length,
                block_length=own.block_length,
                steps=own.steps,
                temperature=own.temperature,
                cache=own.cache,
                threshold=own.threshold,
                remasking=own.remasking,
            )
            task_limit, task_random = own.limit, own.random_subset
        examples = task.load(split)
        if task_limit is not None and task_limit < len(examples):
            if task_random:
                keep = sorted(random.Random(seed).sample(range(len(examples)), task_limit))
                examples = [examples[i] for i in keep]
            else:
                examples = examples[:task_limit]
        start = time.perf_counter()
        records, metrics = evaluate_task(model, task, examples, task_config, batch_size=batch_size, seed=seed)
        extra_cols = {**(extra or {}), "seconds": round(time.perf_counter() - start, 3), **machine()}
        rows += write_results(out_dir, task, split, records, metrics, task_config, extra_cols, protocol)
    frame = pd.DataFrame(rows)
    frame.to_csv(out_dir / "metrics.csv", index=False)
    return frame
