"""``bgpo sft`` and ``bgpo tokenizer``: the starting policy of the embedded default.

``bgpo tokenizer`` trains a small BPE tokenizer (with a mask token) on the prompts and demonstrations of the
training tasks. ``bgpo sft`` builds a random LLaDA-architecture model from a preset with that tokenizer (or
starts from a saved model) and trains it with the masked-diffusion SFT loss on the tasks' demonstrations:

    L = −E_{(x, y)} ℓ(y_t, t, y | x) / |y|     (LLaDA's SFT objective; ℓ as in SPEC §1)

with responses padded to ``response_length`` with EOS (LLaDA's SFT convention, so the model learns to end)
and one mask per example per step. The base is meant to be modest (the paper's base solves 12% of Sudoku and
19.5% of Countdown), so RL has room: ``steps`` sets how much it learns.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerFast

from .batch import RolloutBatch
from .config import require, require_choice
from .diffusion import TIMESTEP_SCHEMES, draw_masks, elbo_terms
from .evaluation import encode_prompts
from .models import build_model, load_model, train_tokenizer
from .run_config import DTYPES
from .seeding import derive_seed
from .tasks import Example, Task, build_task, render_prompt

MISFORMAT_RULES = ("uniform", "graded", "keyed")


@dataclass
class SFTSettings:
    """Settings of ``bgpo sft``.

    Attributes:
        tasks: tasks whose ``train`` demonstrations are the SFT data.
        task_options: per-task options (e.g. ``{gen_sudoku: {min_blanks: 6}}``).
        data_dir: folder with original benchmark files, for tasks that need it.
        tokenizer: a saved tokenizer directory (``bgpo tokenizer``); with ``init`` the model's own is used.
        preset: the architecture preset of a new model.
        model_overrides: LlamaConfig fields that replace the preset's.
        init: start from this saved model instead of a new one.
        dtype: parameter dtype.
        response_length: L, responses are EOS-padded to it (longer demonstrations are an error).
        misformat_fraction: the fraction of training examples whose demonstration is the right answer in a
            format the grader cannot read (``Task.misformatted_demonstration``), always the same examples; the
            base then follows the answer format only part of the time, which leaves RL room (0: plain SFT).
        misformat_rule: how those examples are chosen (:func:`demonstration_pairs`): ``uniform``, the same
            chance for every example (the format decision is then a coin the model cannot read, and greedy
            decoding makes it all-or-nothing: a bistable base), or ``graded``, a chance that grows with the
            three characters before the format decision, from near 0 to near 2 × ``misformat_fraction``, so
            the base learns a visible rule and formats some prompts reliably and others not; or ``keyed``, two
            chances keyed on one character of the prompt (:func:`prompt_key`), low for one half of the examples
            and high for the other (``misformat_contrast``), averaging ``misformat_fraction``: the model reads
            the decision off its prompt, so greedy decoding formats about the low half (not all or nothing).
        misformat_contrast: with ``keyed``, how far apart the two chances lie: their gap is
            2 × contrast × min(f, 1 − f) for ``misformat_fraction`` = f (0: as ``uniform``; 0.7 at f = ½: about
            0.15 and 0.85, so sampling still draws the other format, which RL can learn from).
        steps: optimiser steps.
        batch_size: examples per step.
        learning_rate: AdamW learning rate (not from the paper: small models need ~1e-3).
        weight_decay: AdamW weight decay.
        grad_clip: gradient-norm clipping.
        timesteps: ``iid`` (LLaDA's SFT: t ~ U(0, 1]) or ``stratified``.
        seed: seeds the weights and every draw.
        output_dir: where the model, its tokenizer and ``sft_log.jsonl`` go.
    """

    tasks: list[str] = field(default_factory=list)
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_dir: str | None = None
    tokenizer: str | None = None
    preset: str = "nano"
    model_overrides: dict[str, Any] = field(default_factory=dict)
    init: str | None = None
    dtype: str = "float32"
    response_length: int = 16
    misformat_fraction: float = 0.0
    misformat_rule: str = "uniform"
    misformat_contrast: float = 0.7
    steps: int = 200
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    timesteps: str = "iid"
    seed: int = 0
    output_dir: str = "models/sft"

    def __post_init__(self) -> None:
        require(bool(self.tasks), "sft.tasks must list at least one task")
        require(self.tokenizer is not None or self.init is not None, "sft needs tokenizer (a directory) or init")
        require(self.steps >= 0, f"steps must be ≥ 0, got {self.steps}")
        require(self.batch_size >= 1, f"batch_size must be ≥ 1, got {self.batch_size}")
        require(self.response_length >= 1, f"response_length must be ≥ 1, got {self.response_length}")
        require(
            0 <= self.misformat_fraction < 1, f"misformat_fraction must lie in [0, 1), got {self.misformat_fraction}"
        )
        require(
            0 <= self.misformat_contrast <= 1, f"misformat_contrast must lie in [0, 1], got {self.misformat_contrast}"
        )
        require_choice(self.timesteps, TIMESTEP_SCHEMES, "sft.timesteps")
        require_choice(self.misformat_rule, MISFORMAT_RULES, "sft.misformat_rule")
        require_choice(self.dtype, DTYPES, "sft.dtype")


def tokenizer_corpus(tasks: list[Task]) -> list[str]:
    """Training prompts and demonstrations, and test prompts (never test answers), of ``tasks``."""
    texts: list[str] = []
    for task in tasks:
        for example in task.load("train"):
            texts.append(task.message(example))
            demo = task.demonstration(example)
            if demo:
                texts.append(demo)
        texts += [task.message(e) for e in task.load("test")]
    return texts


def train_task_tokenizer(tasks: list[Task], vocab_size: int) -> PreTrainedTokenizerFast:
    """A BPE tokenizer for the tasks (see :func:`bgpo.models.train_tokenizer`)."""
    return train_tokenizer(tokenizer_corpus(tasks), vocab_size=vocab_size)


def format_key(task: Task, example: Example, demo: str, misformatted: str) -> str:
    """The three characters the model has just read where a demonstration and its misformatted twin part.

    The twins agree up to the format decision (an unclosed tag, an open box, a missing ``return``); the
    characters before it are the end of the answer (its last digits), or, where the twins part at once, the
    end of the prompt. Three characters, so that no key holds a large share of the examples.
    """
    pairs = zip(demo, misformatted, strict=False)
    common = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(demo), len(misformatted)))
    return (task.message(example) + demo[:common])[-3:]


def prompt_key(task: Task, example: Example) -> str:
    """The last letter or digit of the example's prompt: the character ``keyed`` misformatting reads.

    The prompt is always visible to the model (a response character may still be masked when the format is
    decoded), and its last letter or digit varies across the generated tasks' examples: Sudoku's last cell,
    Countdown's last digit of the target, Arithmetic's last operand, Code's last character of the formula.
    """
    chars = [c for c in task.message(example) if c.isalnum()]
    return chars[-1] if chars else ""


def keyed_chances(keys: dict[str, str], misformat_fraction: float, contrast: float) -> dict[str, float]:
    """Two-level misformat chances by key: the ``keyed`` rule of :func:`demonstration_pairs`.

    Keys are sorted; a key whose examples' midpoint lies in the upper half of the examples is "high", the
    rest "low". With s the share of examples under high keys and gap g = 2 × contrast × min(f, 1 − f), the
    high chance is f + (1 − s)·g and the low one f − s·g: a gap of g, and a mean over the examples of exactly f
    (unless a level is clipped to [0, 1], possible only with s far from ½ at a high contrast).
    """
    counts = Counter(keys.values())
    high, below = set(), 0
    for key in sorted(counts):
        if (below + counts[key] / 2) / len(keys) >= 0.5:
            high.add(key)
        below += counts[key]
    share = sum(counts[k] for k in high) / len(keys)
    gap = 2 * contrast * min(misformat_fraction, 1 - misformat_fraction)
    levels = (misformat_fraction - share * gap, misformat_fraction + (1 - share) * gap)
    return {i: min(1.0, max(0.0, levels[key in high])) for i, key in keys.items()}


def demonstration_pairs(
    tasks: list[Task],
    misformat_fraction: float = 0.0,
    seed: int = 0,
    rule: str = "uniform",
    contrast: float = 0.7,
) -> list[tuple[Task, Example, str]]:
    """(task, example, demonstration) for every training example that has a demonstration.

    A share ``misformat_fraction`` = f of the examples (chosen by a hash of (seed, example id)) gets its
    misformatted demonstration instead. ``uniform``: every example with chance f. ``graded``: the chance
    grows with the example's :func:`format_key`: keys sorted, a key whose examples lie between the quantiles
    a and b of the task's examples gets the chance 2f·(a + b)/2 (at most 1), so the chances spread evenly over
    (0, 2f) and average f. Greedy decoding turns a learnt chance below ½ into the right format and above ½
    into the wrong one, prompt by prompt: a base's format share is about the share of prompts whose chance is
    below ½, and a small change of the weights moves only the prompts near ½. (With ``uniform`` every prompt
    sits at the same chance, and a last-bit difference flips them all.) ``keyed``: two chances by the
    example's :func:`prompt_key` (:func:`keyed_chances`), so each prompt's format decision has a wide margin
    the model reads off its prompt, and sampling still draws the other format with the smaller chance.
    """
    require_choice(rule, MISFORMAT_RULES, "sft.misformat_rule")
    pairs = []
    for task in tasks:
        rows = [(ex, demo) for ex in task.load("train") if (demo := task.demonstration(ex))]
        twins: dict[str, str] = {}
        if misformat_fraction:
            for ex, _ in rows:
                twin = task.misformatted_demonstration(ex)
                if twin is None:
                    raise ValueError(f"misformat_fraction > 0, but task {task.name} has no misformatted demonstrations")
                twins[ex.id] = twin
        chance = {ex.id: misformat_fraction for ex, _ in rows}
        if misformat_fraction and rule == "graded":
            keys = {ex.id: format_key(task, ex, demo, twins[ex.id]) for ex, demo in rows}
            counts = Counter(keys.values())
            midpoint, below = {}, 0
            for key in sorted(counts):
                midpoint[key] = (below + counts[key] / 2) / len(rows)
                below += counts[key]
            chance = {i: min(1.0, 2 * misformat_fraction * midpoint[key]) for i, key in keys.items()}
        if misformat_fraction and rule == "keyed":
            chance = keyed_chances({ex.id: prompt_key(task, ex) for ex, _ in rows}, misformat_fraction, contrast)
        for ex, demo in rows:
            if chance[ex.id] and derive_seed(seed, "misformat", ex.id) % 10_000 < chance[ex.id] * 10_000:
                demo = twins[ex.id]
            pairs.append((task, ex, demo))
    if not pairs:
        raise ValueError("the SFT tasks have no demonstrations in their train splits")
    return pairs


def _encode_responses(tokenizer: Any, demos: list[str], length: int, eos: int, sources: list[str]) -> torch.Tensor:
    rows = []
    for demo, source in zip(demos, sources, strict=True):
        ids = tokenizer(demo, add_special_tokens=False)["input_ids"] + [eos]  # at least one EOS ends the answer
        if len(ids) > length:
            raise ValueError(
                f"the demonstration of {source} has {len(ids)} tokens with its EOS, more than response_length="
                f"{length}; raise sft.response_length"
            )
        rows.append(ids + [eos] * (length - len(ids)))
    return torch.tensor(rows)


def run_sft(settings: SFTSettings) -> dict[str, Any]:
    """Train the SFT base and save it to ``output_dir``; returns a summary."""
    out = Path(settings.output_dir)
    tasks = [
        build_task(name, data_dir=settings.data_dir, **settings.task_options.get(name, {})) for name in settings.tasks
    ]
    dtype = getattr(torch, settings.dtype)
    if settings.init is not None:
        model = load_model(settings.init, dtype=dtype)
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(settings.tokenizer)
        model = build_model(settings.preset, tokenizer, seed=settings.seed, dtype=dtype, **settings.model_overrides)
    pairs = demonstration_pairs(
        tasks, settings.misformat_fraction, settings.seed, settings.misformat_rule, settings.misformat_contrast
    )
    tokenizer = model.tokenizer
    prompts = [render_prompt(tokenizer, task.message(ex)) for task, ex, _ in pairs]
    responses = _encode_responses(
        tokenizer, [d for _, _, d in pairs], settings.response_length, model.eos_token_id, [ex.id for _, ex, _ in pairs]
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    gen = torch.Generator().manual_seed(derive_seed(settings.seed, "sft"))
    model.train()
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    loss_value = float("nan")
    records = []
    for step in range(settings.steps):
        idx = torch.randint(len(pairs), (settings.batch_size,), generator=gen)
        ids, mask = encode_prompts(model, [prompts[i] for i in idx.tolist()])
        batch = RolloutBatch(
            prompt_ids=ids,
            prompt_mask=mask,
            response_ids=responses[idx],
            advantages=torch.zeros(len(idx)),
            mask_token_id=model.mask_token_id,
        )
        draw = draw_masks(batch.counted(), 1, settings.timesteps, gen)
        loss = -elbo_terms(model, batch, draw.mask, draw.t, length_normalise=True).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        loss_value = loss.item()
        records.append({"step": step + 1, "loss": loss_value, "grad_norm": float(norm)})
    (out / "sft_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    model.eval()
    model.save_pretrained(out)
    summary = {
        "steps": settings.steps,
        "final_loss": loss_value,
        "seconds": round(time.perf_counter() - start, 2),
        "examples": len(pairs),
        "parameters": model.num_parameters(),
    }
    (out / "sft_summary.json").write_text(json.dumps(summary))
    return summary
