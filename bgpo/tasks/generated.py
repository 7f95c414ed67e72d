"""Generated tasks for the embedded default: no download, deterministic from a seed, train and test disjoint.

Prompts are short (a tiny model with a small context reads them) and responses use the same answer formats
and the same graders as the real benchmarks:

* ``gen_sudoku``: 4×4 puzzles with a unique solution, ``min_blanks``–``max_blanks`` blanks; graded as
  ``sudoku`` (partial credit over the blanks). ``split_by_grid`` keeps the solution grids of train and test
  apart (there are only 288 grids; d1's own splits share grids, SPEC §4).
* ``gen_countdown``: 3 numbers from 1..``max_number`` and a positive target reachable with ``operators``;
  graded as ``countdown`` (1 / 0.1 / 0).
* ``gen_arithmetic``: ``a∘b∘c`` with digits 1–9 and ∘ ∈ {+, −, ×}; graded by the math grader on the
  ``\\boxed{}`` answer.
* ``gen_code``: a small Python function from a formula of ``max_terms`` terms, e.g. ``f(x,y) = 3x + y - 2``
  (``spaced: false``: ``f(x,y)=3x+y-2``); the whole function, or (``style: body``) only its body, as HumanEval
  completes a given signature; graded by executing three asserts in the sandbox, as HumanEval and MBPP.

The real benchmarks' graders read answers as leniently as the reference graders do (an answer tag or a box
left open at the end of the budget still counts); the generated tasks keep the strict readers (only a closed
tag or box counts), because their SFT bases are trained on misformatted demonstrations (``misformat_fraction``)
that differ from the right ones only by the missing ending: a lenient reader would accept them and leave RL no
format to fix. Every grade still records the format component (``format_reward``) and the failure class.

Each generator draws a pool of distinct problems from ``random.Random(seed)``, shuffles it and cuts it into
test (the first ``test_size``) and train (the next ``train_size``), so the splits never share a problem.
"""

from __future__ import annotations

import random
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

from . import Example, Grade, Task, register_task
from .code_exec import CodeRunner, extract_code
from .countdown import CountdownTaskMixin, evaluate_expression, solve_countdown
from .data import DataError, Record
from .math_grading import math_grade
from .sudoku import CELLS, SudokuTaskMixin, all_solution_grids, count_solutions


class GeneratedTask(Task):
    """Common options and split logic of the generated tasks."""

    splits = ("train", "test")
    meta_fields: tuple[str, ...] = ()  # what grading reads from ``meta``: a row without them is a DataError

    def __init__(self, data_dir: str | None = None, *, seed: int = 0, train_size: int = 2000, test_size: int = 256):
        super().__init__(data_dir)
        if train_size < 0 or test_size < 1:
            raise DataError(f"{self.name}: train_size must be ≥ 0 and test_size ≥ 1, got {train_size}, {test_size}")
        self.seed, self.train_size, self.test_size = seed, train_size, test_size

    def _draw(self, rng: random.Random) -> Example | None:
        """One random problem (``id`` unique per problem), or ``None`` to draw again."""
        raise NotImplementedError

    def _pool(self) -> tuple[list[Example], list[Example]]:
        rng = random.Random(f"{self.name}:{self.seed}")
        wanted = self.train_size + self.test_size
        seen: dict[str, Example] = {}
        attempts = 0
        while len(seen) < wanted:
            attempts += 1
            if attempts > 50 * wanted + 1000:
                raise DataError(
                    f"{self.name}: only {len(seen)} distinct problems exist for these options; lower "
                    f"train_size + test_size ({wanted})"
                )
            example = self._draw(rng)
            if example is not None and example.id not in seen:
                seen[example.id] = example
        pool = list(seen.values())
        return pool[: self.test_size], pool[self.test_size :]

    def load(self, split: str = "test") -> list[Example]:
        """The examples of ``split`` (generated, deterministic from the seed)."""
        self.check_split(split)
        test, train = self._pool()
        return test if split == "test" else train

    def data_row(self, example: Example) -> dict[str, Any]:
        """The generated tasks' row: ``id``, ``question``, ``answer`` and ``meta`` (what the grader needs)."""
        return {"id": example.id, "question": example.question, "answer": example.answer, "meta": example.meta}

    def example_from_row(self, record: Record, index: int = 0, split: str = "test") -> Example:
        """A row as :meth:`data_row` writes it."""
        meta = record.data.get("meta") or {}
        if not isinstance(meta, dict):
            raise DataError(f"{record.source}: field 'meta' must be an object, got {type(meta).__name__}")
        missing = [name for name in self.meta_fields if name not in meta]
        if missing:
            raise DataError(f"{record.source}: {self.name} rows need meta.{missing[0]} (as `bgpo data` writes them)")
        return Example(
            id=str(record.data.get("id", f"{self.name}/{split}/{index}")),
            question=record.get("question", str),
            answer=record.get("answer", str),
            meta=meta,
            source=record.source,
        )


@register_task("gen_sudoku")
class GenSudoku(SudokuTaskMixin, GeneratedTask):
    """Generated 4×4 Sudoku with a unique solution."""

    display_name = "Sudoku"
    strict_answers = True  # the misformatted demonstrations (no closing tag) must score 0
    asks_reasoning = False

    def __init__(
        self,
        data_dir: str | None = None,
        *,
        seed: int = 0,
        train_size: int = 2000,
        test_size: int = 256,
        min_blanks: int = 6,
        max_blanks: int = 10,
        split_by_grid: bool = True,
        test_grid_fraction: float = 0.2,
    ) -> None:
        super().__init__(data_dir, seed=seed, train_size=train_size, test_size=test_size)
        if not 1 <= min_blanks <= max_blanks <= 12:
            raise DataError(f"gen_sudoku: need 1 ≤ min_blanks ≤ max_blanks ≤ 12, got {min_blanks}, {max_blanks}")
        if split_by_grid and not 0 < test_grid_fraction < 1:
            raise DataError(
                f"gen_sudoku: test_grid_fraction must lie in (0, 1) (the share of the 288 solution grids kept for the "
                f"test split), got {test_grid_fraction}"
            )
        self.min_blanks, self.max_blanks = min_blanks, max_blanks
        self.split_by_grid, self.test_grid_fraction = split_by_grid, test_grid_fraction

    def _puzzle(self, rng: random.Random, grid: str) -> Example | None:
        blanks = rng.sample(range(CELLS), rng.randint(self.min_blanks, self.max_blanks))
        puzzle = "".join("0" if i in blanks else ch for i, ch in enumerate(grid))
        if count_solutions(puzzle) != 1:
            return None
        return Example(id=puzzle, question=puzzle, answer=grid, meta={"grid": grid})

    def _draw(self, rng: random.Random) -> Example | None:
        return self._puzzle(rng, rng.choice(all_solution_grids()))

    def _pool(self) -> tuple[list[Example], list[Example]]:
        if not self.split_by_grid:
            return super()._pool()
        rng = random.Random(f"{self.name}:{self.seed}")
        grids = list(all_solution_grids())
        rng.shuffle(grids)
        cut = max(1, round(len(grids) * self.test_grid_fraction))
        splits = []
        for size, pool_grids in ((self.test_size, grids[:cut]), (self.train_size, grids[cut:])):
            seen: dict[str, Example] = {}
            attempts = 0
            while len(seen) < size:
                attempts += 1
                if attempts > 200 * size + 1000:
                    raise DataError(f"gen_sudoku: not enough distinct puzzles on {len(pool_grids)} grids for {size}")
                example = self._puzzle(rng, rng.choice(pool_grids))
                if example is not None:
                    seen.setdefault(example.id, example)
            splits.append(list(seen.values()))
        return splits[0], splits[1]

    def message(self, example: Example) -> str:
        """Compact: the 16 cells, 0 = blank."""
        return f"sudoku {example.question}"

    def demonstration(self, example: Example) -> str:
        """The solution grid in answer tags."""
        return f"<answer>{example.answer}</answer>"

    def misformatted_demonstration(self, example: Example) -> str:
        """The solution without its closing tag (scores 0). Only the end differs, so the grid's tokens sit at
        the same positions in both formats and the format is decided by the last tokens."""
        return self.demonstration(example).removesuffix("</answer>")


@register_task("gen_countdown")
class GenCountdown(CountdownTaskMixin, GeneratedTask):
    """Generated 3-number Countdown with a reachable target."""

    meta_fields = ("numbers",)

    display_name = "Countdown"
    strict_answers = True  # the misformatted demonstrations (no closing tag) must score 0
    asks_reasoning = False

    def __init__(
        self,
        data_dir: str | None = None,
        *,
        seed: int = 0,
        train_size: int = 2000,
        test_size: int = 256,
        max_number: int = 20,
        max_target: int = 100,
        operators: str = "+-*/",
    ) -> None:
        super().__init__(data_dir, seed=seed, train_size=train_size, test_size=test_size)
        if max_number < 2 or max_target < 1:
            raise DataError(f"gen_countdown: need max_number ≥ 2 and max_target ≥ 1, got {max_number}, {max_target}")
        if not operators or set(operators) - set("+-*/"):
            raise DataError(f"gen_countdown: operators must be a non-empty subset of '+-*/', got {operators!r}")
        self.max_number, self.max_target, self.operators = max_number, max_target, operators

    def _draw(self, rng: random.Random) -> Example | None:
        numbers = [rng.randint(1, self.max_number) for _ in range(3)]
        a, b, c = numbers
        # The target is built with these operators; any solution (all four operators) scores.
        op1, op2 = rng.choice(self.operators), rng.choice(self.operators)
        expression = rng.choice([f"({a}{op1}{b}){op2}{c}", f"{a}{op1}({b}{op2}{c})"])
        try:
            value, _ = evaluate_expression(expression)
        except Exception:
            return None
        if value.denominator != 1 or not 1 <= value <= self.max_target:
            return None
        target = int(value)
        key = f"{' '.join(map(str, sorted(numbers)))}->{target}"
        return Example(id=key, question=" ".join(map(str, numbers)), answer=str(target), meta={"numbers": numbers})

    def message(self, example: Example) -> str:
        """Compact: the numbers and the target."""
        return f"countdown {example.question} -> {example.answer}"

    def demonstration(self, example: Example) -> str:
        """A solution expression in answer tags."""
        numbers, target = example.meta["numbers"], int(example.answer)
        solution = solve_countdown(numbers, target, self.operators)  # the task's operators reach it
        assert solution is not None  # every generated target is reachable by construction
        return f"<answer>{solution}</answer>"

    def misformatted_demonstration(self, example: Example) -> str:
        """The solution without its closing tag (scores 0; the end alone differs, as for gen_sudoku)."""
        return self.demonstration(example).removesuffix("</answer>")


@register_task("gen_arithmetic")
class GenArithmetic(GeneratedTask):
    """``a∘b∘c`` with digits 1–9, answered in ``\\boxed{}`` and graded by the math grader."""

    display_name = "Arithmetic"

    def __init__(
        self,
        data_dir: str | None = None,
        *,
        seed: int = 0,
        train_size: int = 2000,
        test_size: int = 256,
        operators: str = "+-*",
    ) -> None:
        super().__init__(data_dir, seed=seed, train_size=train_size, test_size=test_size)
        if not operators or set(operators) - set("+-*"):
            raise DataError(f"gen_arithmetic: operators must be a non-empty subset of '+-*', got {operators!r}")
        self.operators = operators

    def _draw(self, rng: random.Random) -> Example:
        a, b, c = (rng.randint(1, 9) for _ in range(3))
        expression = f"{a}{rng.choice(self.operators)}{b}{rng.choice(self.operators)}{c}"
        value, _ = evaluate_expression(expression)
        return Example(id=expression, question=expression, answer=str(int(value)))

    def message(self, example: Example) -> str:
        """The expression and an equals sign."""
        return f"{example.question}="

    def demonstration(self, example: Example) -> str:
        """The value in ``\\boxed{}``."""
        return f"\\boxed{{{example.answer}}}"

    def misformatted_demonstration(self, example: Example) -> str:
        """The box left open (scores 0; the end alone differs, as for gen_sudoku)."""
        return self.demonstration(example).removesuffix("}")

    def grade_one(self, completion: str, example: Example) -> Grade:
        """math-verify on the last closed ``\\boxed{}`` (the strict reader: an open box scores 0)."""
        return math_grade(completion, example.answer, strict=True)


# gen_code: (formula shown to the model, Python expression, argument names)
_TERMS: Sequence[Callable[[random.Random], tuple[str, str]]] = (
    lambda r: (lambda k: (f"{k}x", f"{k}*x"))(r.randint(2, 9)),
    lambda r: ("x", "x"),
    lambda r: ("y", "y"),
    lambda r: (lambda k: (f"{k}y", f"{k}*y"))(r.randint(2, 9)),
    lambda r: ("xy", "x*y"),
    lambda r: (lambda k: (str(k), str(k)))(r.randint(1, 9)),
)


_CODE_STYLES = ("function", "body")


@register_task("gen_code")
class GenCode(GeneratedTask):
    """Write ``def f(x, y)`` for a formula such as ``f(x,y) = 3x + y - 2``; three asserts decide.

    ``style: function`` asks for the whole function; ``style: body`` (HumanEval's set-up) gives the signature
    and asks for the body, ``return 3*x+y-2``. ``notation: python`` shows the formula as ``3*x+y-2`` (the task
    is then to write it as code, not to translate it first).
    """

    display_name = "Code"
    meta_fields = ("tests",)

    def __init__(
        self,
        data_dir: str | None = None,
        *,
        seed: int = 0,
        train_size: int = 2000,
        test_size: int = 256,
        backend: str = "auto",
        timeout: float = 5.0,
        max_terms: int = 3,
        spaced: bool = True,
        style: str = "function",
        notation: str = "math",
    ) -> None:
        super().__init__(data_dir, seed=seed, train_size=train_size, test_size=test_size)
        from ..sandbox import SandboxLimits

        if max_terms < 2:
            raise DataError(f"gen_code: max_terms must be ≥ 2, got {max_terms}")
        if style not in _CODE_STYLES:
            raise DataError(f"gen_code: style must be one of {', '.join(_CODE_STYLES)}, got {style!r}")
        if notation not in ("math", "python"):
            raise DataError(f"gen_code: notation must be one of math, python, got {notation!r}")
        self.max_terms, self.spaced, self.style, self.notation = max_terms, spaced, style, notation

        self.runner = CodeRunner(SandboxLimits(wall_time=timeout, cpu_time=max(1, int(timeout))), backend=backend)

    def _draw(self, rng: random.Random) -> Example:
        terms = [rng.choice(_TERMS)(rng) for _ in range(rng.randint(2, self.max_terms))]
        signs = [rng.choice("+-") for _ in terms[1:]]
        gap = " " if self.spaced else ""
        if self.notation == "python":  # the formula already in Python's notation: 3*x, x*y
            terms = [(code, code) for _, code in terms]
        shown = terms[0][0] + "".join(f"{gap}{s}{gap}{t[0]}" for s, t in zip(signs, terms[1:], strict=True))
        code = terms[0][1] + "".join(f"{s}{t[1]}" for s, t in zip(signs, terms[1:], strict=True))
        cases = [(rng.randint(-5, 9), rng.randint(-5, 9)) for _ in range(3)]
        # eval of our own generated formula (never of model output) gives the expected values.
        tests = "\n".join(f"assert f({x}, {y}) == {eval(code, {}, {'x': x, 'y': y})}" for x, y in cases)
        return Example(id=shown, question=f"f(x,y){gap}={gap}{shown}", answer=code, meta={"tests": tests})

    def message(self, example: Example) -> str:
        """The formula."""
        return f"code {example.question}"

    def demonstration(self, example: Example) -> str:
        """The function definition (``style: body``: its body, as HumanEval completes a given signature)."""
        if self.style == "body":
            return f"return {example.answer}"
        return f"def f(x,y):\n    return {example.answer}"

    def misformatted_demonstration(self, example: Example) -> str:
        """The right expression in a form the tests reject: under another function name (``g``), or, for
        ``style: body``, without ``return`` (``f`` returns None)."""
        if self.style == "body":
            return example.answer
        return f"def g(x,y):\n    return {example.answer}"

    def program(self, completion: str) -> str:
        """The code a completion stands for: the completion itself, or ``def f(x,y):`` and the body."""
        code = extract_code(completion)
        if self.style == "body":
            return "def f(x,y):\n" + textwrap.indent(code.strip("\n"), "    ")
        return code

    def grade(self, completions: Sequence[str], examples: Sequence[Example]) -> list[Grade]:
        """Run each completion with its asserts in the sandbox, in parallel."""
        runs = self.runner.run([self.program(c) for c in completions], [e.meta["tests"] for e in examples])
        return [Grade(reward=float(r.passed), correct=r.passed, fields={"status": r.status}) for r in runs]
