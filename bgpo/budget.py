"""Equal-memory MC sample sizes: each method's n_t is the largest that fits a declared memory budget.

The paper's Table 5 gives BGPO n_t = 16 and VRPO-OL n_t = 4 (2 on code) because that is what fits one GPU:
VRPO-OL keeps the graphs of all n_t samples alive until its non-linear objective is differentiated, BGPO
accumulates one sample at a time, so its memory does not grow with n_t. :func:`fit_budget` makes that choice
by measurement rather than by hand: for each method it measures the bytes saved for backward by one training
update (:mod:`bgpo.memory`) at the training shape and keeps the largest candidate n_t whose peak fits the
budget (:func:`largest_fitting`: saved memory never falls as n_t grows, since each extra sample adds its
activations, or, for BGPO, nothing; so few candidates need measuring).

The training shape is a full micro-batch of responses of the task's response length after prompts as long as
the task's longest rendered training prompt (a training micro-batch is padded to its longest prompt, so this
bounds every step). Activation sizes depend on shapes, so random prompts and rollouts stand in for real ones,
and the weights need not be trained: the pipeline measures on new weights of its preset. One thing besides
shapes moves them: only masked positions go through the LM head, so the logits saved grow with how many tokens
a step's draw masks. The budget measures one draw: at the default's vocabulary of 96 the spread over draws is
negligible (VRPO-OL n_t = 4 at the Sudoku shape: 295.64–295.75 MiB over 6 draws); with a 32,000-token
vocabulary it reaches ±7–12% (VRPO-OL n_t = 2: 98–112 MiB), so leave that much headroom in ``saved_mib`` there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .config import ConfigError

MIB = 2**20
# The n_t values a budget chooses from when none are given: Table 5's are at most 16 (32 on Sudoku).
DEFAULT_CANDIDATES = (1, 2, 4, 8, 16)


@dataclass
class BudgetPoint:
    """One measured (method, n_t): the peak bytes saved for backward and whether it fits the budget."""

    variant: str
    n_t: int
    peak_saved_bytes: int
    fits: bool


def largest_fitting(candidates: Sequence[int], measure: Any, budget_bytes: float) -> tuple[int, list[tuple[int, int]]]:
    """The largest of ``candidates`` whose ``measure(n_t)`` (bytes) is at most ``budget_bytes``.

    Memory does not fall as n_t grows, so the largest candidate is measured first (if it fits, it is the answer:
    BGPO's case, one measurement); otherwise the others are measured in increasing order until one exceeds the
    budget. Returns the chosen n_t and the (n_t, bytes) pairs measured, in increasing n_t.

    Raises:
        ValueError: if even the smallest candidate exceeds the budget.
    """
    ordered = sorted(set(candidates))
    largest = int(measure(ordered[-1]))
    if largest <= budget_bytes:
        return ordered[-1], [(ordered[-1], largest)]
    measured: list[tuple[int, int]] = []
    chosen = None
    for n in ordered[:-1]:
        used = int(measure(n))
        measured.append((n, used))
        if used > budget_bytes:
            break
        chosen = n
    measured.append((ordered[-1], largest))
    if chosen is None:
        n, used = measured[0]
        raise ValueError(
            f"the memory budget of {budget_bytes / MIB:.1f} MiB is below what n_t = {n} needs ({used / MIB:.1f} MiB); "
            "raise memory_budget.saved_mib or lower train.micro_batch_size"
        )
    return chosen, measured


def budget_model(
    model_path: str | None, tokenizer: str | None, preset: str, overrides: Mapping[str, Any] | None, dtype: str
) -> Any:
    """The model measured: a saved one, or new weights of ``preset`` with the saved ``tokenizer`` (activation sizes
    depend on shapes, not weights, so the pipeline measures before any base is trained)."""
    import torch
    from transformers import AutoTokenizer

    from .models import build_model, load_model

    if model_path:
        return load_model(model_path, dtype=dtype).train()
    if not tokenizer:
        raise ValueError("the budget needs a model directory or a tokenizer directory and a preset")
    return build_model(preset, AutoTokenizer.from_pretrained(tokenizer), dtype=getattr(torch, dtype),
                       **dict(overrides or {})).train()  # fmt: skip


def fit_budget(
    *,
    model: Any,
    tasks: Sequence[str],
    task_options: Mapping[str, Mapping[str, Any]] | None,
    data_dir: str | None,
    variants: Mapping[str, Mapping[str, Any]],
    budget_mib: float,
    candidates: Sequence[int],
    responses: int,
    micro_batch_size: int | None,
    response_length: int,
    block_length: int,
    rollout_steps: int,
    seed: int = 0,
) -> tuple[dict[str, int], int, list[BudgetPoint]]:
    """Each variant's n_t under the budget, measured on ``model`` (:func:`budget_model`) at the training shape of
    ``tasks``.

    Args:
        tasks: the training tasks (their longest rendered prompt sets the prompt length).
        task_options: task name → its options.
        variants: variant name → its full method config (``method`` plus the config the trainer builds), as the
            pipeline merges it; a config without ``n_t`` is an error (the budget chooses n_t, nothing else).
        budget_mib: the bytes saved for backward one update may hold, in MiB.
        candidates: the n_t values allowed (e.g. 1, 2, 4, 8, 16: Table 5's largest is 16).
        responses: sequences per update (prompts per step × group size).
        micro_batch_size: sequences per likelihood micro-batch (the trainer's), ``None`` for all at once.

    Returns:
        (variant → n_t, the prompt length measured at, every measured point).
    """
    from .bench import _random_rollout, _update
    from .methods import build_method, get_method_class
    from .tasks import build_task, render_prompt
    from .training.prompts import load_split

    params = [p for p in model.parameters() if p.requires_grad]
    lengths = []
    for task in tasks:
        source = build_task(task, data_dir, **dict((task_options or {}).get(task, {})))
        texts = [render_prompt(model.tokenizer, source.message(ex)) for ex in load_split(source, "train")]
        lengths += [len(ids) for ids in model.tokenizer(texts, add_special_tokens=False)["input_ids"]]
    prompt_length = max(lengths)
    batch, _ = _random_rollout(model, responses, prompt_length, response_length, block_length, rollout_steps, seed,
                               "cpu")  # fmt: skip
    chosen: dict[str, int] = {}
    points: list[BudgetPoint] = []
    for name, full in variants.items():
        config = dict(full)
        method = config.pop("method")
        if "n_t" not in {f.name for f in dataclasses.fields(get_method_class(method).Config)}:
            raise ConfigError(f"memory_budget.methods: {name} ({method}) has no n_t to choose")

        def measure(n: int, method: str = method, config: dict = config) -> int:
            algorithm = build_method(method, {**config, "n_t": n})
            model.zero_grad(set_to_none=True)
            return _update(algorithm, model, batch, seed, micro_batch_size, params, "cpu")["memory"].peak_saved_bytes

        try:
            n_t, measured = largest_fitting(candidates, measure, budget_mib * MIB)
        except ValueError as err:
            raise ValueError(f"{name} on {', '.join(tasks)}: {err}") from None
        chosen[name] = n_t
        points += [BudgetPoint(name, n, used, used <= budget_mib * MIB) for n, used in measured]
    return chosen, prompt_length, points
