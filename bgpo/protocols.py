"""Named evaluation protocols: the decoding settings, evaluated set and headline metric of each benchmark.

Scores of the same model differ by several points between code bases that decode or score differently, so
every results row says which protocol produced it (the ``protocol`` column of ``metrics.csv`` and
``runs.csv``), and a protocol pins everything that changes the number:

* ``bgpo``: the BGPO paper (SPEC §4, Table 5 "eval"): greedy, block 32, one diffusion step per token; 512
  tokens for math and code, 256 for Sudoku and Countdown; Table 6 also evaluates at 256, 512, 1024 and 2048.
  Sudoku: a random 256 of d1's 500 test puzzles (d1's protocol; the paper does not say otherwise) and cell
  accuracy, Σ correct empty cells / Σ empty cells (SPEC §4 and §6; the paper does not say whether its cells
  are pooled or averaged per puzzle: the per-puzzle mean is the ``mean_reward`` row).
* ``d1``: d1's evaluation (``eval/*.py`` of dllm-reasoning/d1, SPEC §6): greedy, block 32, steps = length / 2,
  at 128, 256 or 512 tokens, on GSM8K, MATH500, Countdown and Sudoku (a random 256 of 500 puzzles, d1's
  ``cell_accuracy`` over the empty cells). d1's own prompts and its random draw of puzzles are not reproduced:
  the prompts are the tasks' and the draw is seeded here.

``custom`` (no protocol) means the settings of the command line, recorded in each row's columns. The answer
extraction is the task's (:mod:`bgpo.tasks`) in every protocol. Every named protocol decodes exactly: no KV
cache (``cache: none``) and LLaDA's fixed schedule (no confidence threshold); a faster approximate decode is
recorded as ``custom`` with its ``cache`` and ``threshold`` columns, so it is never mixed with exact numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import ConfigError, unknown_name_error

CUSTOM = "custom"


@dataclass(frozen=True)
class BenchmarkProtocol:
    """How one benchmark is evaluated under a protocol.

    Attributes:
        gen_lengths: the response lengths the protocol evaluates at.
        default_length: the length used when none is given (``None``: one must be chosen).
        block_length: the decoding block (a length not divisible by it is decoded as one block).
        steps_per_token: diffusion steps per response token (Table 5 eval: 1; d1: 0.5).
        limit: evaluate this many examples (``None``: all).
        random_subset: with ``limit``, a random subset drawn with the evaluation seed.
    """

    gen_lengths: tuple[int, ...]
    default_length: int | None = None
    block_length: int = 32
    steps_per_token: float = 1.0
    limit: int | None = None
    random_subset: bool = False


@dataclass(frozen=True)
class EvalSettings:
    """The settings of one evaluation of one benchmark (a protocol's, or the command line's)."""

    gen_length: int
    block_length: int
    steps: int
    temperature: float = 0.0
    limit: int | None = None
    random_subset: bool = False
    cache: str = "none"  # the sampler's KV cache (bgpo.kv_cache); a named protocol pins none: exact decoding
    threshold: float | None = None  # confidence-threshold decoding; a named protocol pins None: the schedule
    remasking: str = "low_confidence"  # LLaDA's (SPEC §6); a named protocol pins it


@dataclass(frozen=True)
class Protocol:
    """A named evaluation protocol (see the module docstring).

    Attributes:
        name: the registry key, written in every results row.
        source: where the settings come from.
        benchmarks: task name → its settings.
        temperature: decoding temperature (0: greedy, pass@1).
        sudoku_metric: the headline metric of the Sudoku tasks (``cell_accuracy`` or the per-puzzle mean,
            ``mean_reward``).
    """

    name: str
    source: str
    benchmarks: Mapping[str, BenchmarkProtocol] = field(default_factory=dict)
    temperature: float = 0.0
    sudoku_metric: str = "cell_accuracy"

    def settings(self, task: str, gen_length: int | None = None) -> EvalSettings:
        """The settings of ``task`` at ``gen_length`` (default: the protocol's first length for it)."""
        if task not in self.benchmarks:
            raise ConfigError(
                f"protocol {self.name} does not cover task {task!r} (it covers {', '.join(self.benchmarks)}); "
                f"evaluate it without --protocol (recorded as {CUSTOM})"
            )
        spec = self.benchmarks[task]
        if gen_length is None:
            if spec.default_length is None:
                raise ConfigError(
                    f"protocol {self.name} evaluates {task} at {', '.join(map(str, spec.gen_lengths))} tokens: "
                    "pass --gen-length with one of them"
                )
            gen_length = spec.default_length
        if gen_length not in spec.gen_lengths:
            raise ConfigError(
                f"protocol {self.name} evaluates {task} at {', '.join(map(str, spec.gen_lengths))} tokens, "
                f"not {gen_length}; pick one of them or drop --protocol"
            )
        block = spec.block_length if gen_length % spec.block_length == 0 else gen_length
        return EvalSettings(
            gen_length=gen_length,
            block_length=block,
            steps=max(1, round(gen_length * spec.steps_per_token)),
            temperature=self.temperature,
            limit=spec.limit,
            random_subset=spec.random_subset,
        )

    def metric(self, task_metric: str) -> str:
        """The headline metric of a task whose own metric is ``task_metric`` under this protocol."""
        return self.sudoku_metric if task_metric == "cell_accuracy" else task_metric


_TABLE6 = (256, 512, 1024, 2048)  # Table 6 evaluates the BGPO models at these lengths
_MATH_CODE_BGPO = BenchmarkProtocol(gen_lengths=_TABLE6, default_length=512)
_PLANNING_BGPO = BenchmarkProtocol(gen_lengths=_TABLE6, default_length=256)
_D1 = BenchmarkProtocol(gen_lengths=(128, 256, 512), steps_per_token=0.5)

PROTOCOLS: dict[str, Protocol] = {
    "bgpo": Protocol(
        name="bgpo",
        source="BGPO paper, SPEC §4 and Table 5 (eval: length = steps, block 32, greedy); Table 6 lengths",
        benchmarks={
            "math500": _MATH_CODE_BGPO,
            "gsm8k": _MATH_CODE_BGPO,
            "humaneval": _MATH_CODE_BGPO,
            "mbpp": _MATH_CODE_BGPO,
            "mbpp_sanitized": _MATH_CODE_BGPO,
            "countdown": _PLANNING_BGPO,
            "sudoku": BenchmarkProtocol(gen_lengths=_TABLE6, default_length=256, limit=256, random_subset=True),
        },
    ),
    "d1": Protocol(
        name="d1",
        source="d1 (dllm-reasoning/d1 eval/), SPEC §6: block 32, steps = length / 2, greedy, 128/256/512 tokens",
        benchmarks={
            "gsm8k": _D1,
            "math500": _D1,
            "countdown": _D1,
            "sudoku": BenchmarkProtocol(
                gen_lengths=(128, 256, 512), steps_per_token=0.5, limit=256, random_subset=True
            ),
        },
    ),
}


def protocol_names() -> list[str]:
    """The named protocols (``custom`` is not one: it means the command line's settings)."""
    return sorted(PROTOCOLS)


def get_protocol(name: str) -> Protocol | None:
    """The protocol called ``name``; ``None`` for ``custom``; an unknown name lists the valid ones."""
    if name == CUSTOM:
        return None
    if name not in PROTOCOLS:
        raise unknown_name_error("protocol", name, [*PROTOCOLS, CUSTOM])
    return PROTOCOLS[name]


def resolve_settings(protocol: str, task: str, given: Mapping[str, Any], defaults: EvalSettings) -> EvalSettings:
    """The settings of ``task``: the protocol's, checked against the ones given on the command line.

    ``given`` holds the options the user set (``gen_length``, ``block_length``, ``steps``, ``temperature``,
    ``limit``, ``random_subset``, ``cache``, ``threshold``, ``remasking``; unset ones absent or ``None``). Under
    ``custom`` they fill ``defaults``; under a named protocol each one given must equal the protocol's value (a
    different one is an error naming the option), so that a row labelled with a protocol was produced by it.
    """
    given = {k: v for k, v in given.items() if v is not None}
    found = get_protocol(protocol)
    if found is None:
        values = {**defaults.__dict__, **given}
        if "steps" not in given:
            values["steps"] = values["gen_length"]
        return EvalSettings(**values)
    pinned = found.settings(task, given.get("gen_length"))
    for key, value in given.items():
        if value != getattr(pinned, key):
            exact = key in ("cache", "threshold", "remasking")
            why = (
                " (a named protocol decodes exactly as LLaDA: low-confidence remasking, no KV cache, no confidence "
                "threshold)"
                if exact
                else ""
            )
            raise ConfigError(
                f"--{key.replace('_', '-')} {value} differs from protocol {protocol}'s {getattr(pinned, key)} for "
                f"{task}{why}; drop the option, or drop --protocol (the results are then recorded as {CUSTOM})"
            )
    return pinned
