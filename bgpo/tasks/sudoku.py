"""4×4 Sudoku (d1's planning task, SPEC §4).

Data: d1's ``4x4_test_sudoku.csv`` (500 puzzles, columns Puzzle and Solution, 16 digits, 0 = blank); d1
evaluates a random 256 of them (``limit: 256`` with the evaluation seed). Training: d1's
``4x4_sudoku_unique_puzzles.csv`` (same columns; not on the hub, and not in ../shared/data), or the generated
``gen_sudoku`` task.

Reward and metric: the fraction of the puzzle's empty cells filled correctly (partial credit), read from the
digits of the last ``<answer>…</answer>`` as d1's training reward does (no tag scores 0); the metric is the
cell accuracy over all empty cells of the evaluated puzzles (d1's aggregation, SPEC §6).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import ClassVar

from . import Example, Grade, Task, last_answer_tag, register_task
from .answers import answer_tags, clean, last_box, planning_format_ok, unclosed_answer
from .data import DataError, Record, read_local

SIZE = 4
CELLS = SIZE * SIZE


def _units() -> list[list[int]]:
    rows = [[r * SIZE + c for c in range(SIZE)] for r in range(SIZE)]
    cols = [[r * SIZE + c for r in range(SIZE)] for c in range(SIZE)]
    boxes = [[(br + r) * SIZE + bc + c for r in range(2) for c in range(2)] for br in (0, 2) for bc in (0, 2)]
    return rows + cols + boxes


UNITS = _units()


def is_solution(grid: str) -> bool:
    """True if ``grid`` (16 digits) is a complete valid 4×4 Sudoku."""
    return len(grid) == CELLS and all(sorted(grid[i] for i in unit) == list("1234") for unit in UNITS)


def count_solutions(puzzle: str, limit: int = 2) -> int:
    """Number of completions of ``puzzle`` (0 = blank), counting up to ``limit``."""
    cells = list(puzzle)
    try:
        blank = cells.index("0")
    except ValueError:
        return int(is_solution(puzzle))
    total = 0
    for digit in "1234":
        if all(cells[i] != digit for unit in UNITS if blank in unit for i in unit):
            cells[blank] = digit
            total += count_solutions("".join(cells), limit - total)
            cells[blank] = "0"
            if total >= limit:
                break
    return total


@cache
def all_solution_grids() -> tuple[str, ...]:
    """All 288 valid 4×4 Sudoku grids, sorted (backtracking over cells in order)."""
    grids: list[str] = []

    def fill(cells: list[str]) -> None:
        i = len(cells)
        if i == CELLS:
            grids.append("".join(cells))
            return
        used = {cells[j] for unit in UNITS if i in unit for j in unit if j < i}
        for digit in "1234":
            if digit not in used:
                fill([*cells, digit])

    fill([])
    return tuple(grids)


# "Row 1:", "row 2 -", "R3)": labels whose digits are not cells.
_ROW_LABEL = re.compile(r"(?i)\b(?:row|line|r)\s*\d\s*[:.)=-]")
# "4x4", "4 × 4": the grid's size, which models echo from the prompt ("Solution (4x4):").
_GRID_SIZE = re.compile(r"\d+\s*[x×]\s*\d+")
# "1. 3 1 4 2", "2) 2 4 3 1": row numbers at the start of a line.
_ENUMERATOR = re.compile(r"^\s*\d+[.)]\s+", re.MULTILINE)
_BARE_GRID = re.compile(r"(?<!\d)\d{16}(?!\d)")
_GRID_LINE = re.compile(r"^\W*[0-4](?:\W*[0-4]){3}\W*$")


def _cells(content: str) -> str:
    """The digits of an answer, row labels, row numbers and the grid's size dropped; with more than 16, the last
    run of 16 not broken by words."""
    content = _ENUMERATOR.sub(" ", _GRID_SIZE.sub(" ", _ROW_LABEL.sub(" ", content)))
    digits = "".join(ch for ch in content if ch.isdigit())
    if len(digits) > CELLS:
        runs = _BARE_GRID.findall(re.sub(r"[^\w]", "", content))  # separators dropped, words kept
        if runs:
            return runs[-1]
    return digits


def _bare_grid(text: str) -> str | None:
    """A grid written outside any tag: the last 16-digit run, or the last four lines of four digits 0-4."""
    runs = _BARE_GRID.findall(text)
    lines = text.splitlines()
    for end in range(len(lines), 3, -1):
        block = lines[end - 4 : end]
        if all(_GRID_LINE.match(line) for line in block):
            grid = "".join(ch for line in block for ch in line if ch.isdigit())
            if not runs or text.rfind(runs[-1]) < text.rfind(block[-1]):
                return grid
            break
    return runs[-1] if runs else None


def extract_sudoku(completion: str) -> tuple[str | None, str]:
    """The digits of a completion's grid and where they were found (d1's evaluation reads all of these).

    In order: the answer tag left open at the end of the budget; the last closed ``<answer>`` holding a digit
    (a ``\\boxed{}`` or code fence inside it is read through); an empty tag followed by the grid; the last
    box; a grid written bare (16 digits in a row, or four lines of four). Returns ``(digits, source)``,
    ``(None, "none")`` when there is no grid.
    """
    text = clean(completion)
    tail = unclosed_answer(text)
    tags = answer_tags(text)
    with_digits = [t for t in tags if _has_digit(t)]
    after = text.rsplit("</answer>", 1)[1] if tags else ""
    box = last_box(text)
    if tail is not None and _has_digit(tail):
        content, source = tail, "unclosed_tag"
    elif with_digits:
        content, source = with_digits[-1], "answer_tag"
    elif _has_digit(after):
        content, source = after, "after_tag"
    elif box is not None and _has_digit(box.content):
        content, source = box.content, "boxed"
    else:
        grid = _bare_grid(text)
        return (grid, "text") if grid is not None else (None, "none")
    inner = last_box(content)
    if inner is not None and _has_digit(inner.content):
        content = inner.content
    return _cells(content), source


def _has_digit(text: str) -> bool:
    return any(ch.isdigit() for ch in text)


def sudoku_format_ok(completion: str, reasoning: bool = True) -> bool:
    """The strict format: (reasoning and) one closed answer tag holding exactly 16 digits (whitespace
    between them allowed), nothing after it."""
    answer = planning_format_ok(completion, reasoning)
    return answer is not None and re.fullmatch(r"(?:\s*\d){16}\s*", answer) is not None


def sudoku_grade(completion: str, puzzle: str, solution: str, *, strict: bool = False, reasoning: bool = True) -> Grade:
    """Partial credit: correct digits on the puzzle's blanks / number of blanks (d1's Sudoku reward).

    As d1's ``sudoku_reward_func``: the answer's digits (:func:`extract_sudoku`; ``strict``: only those of the
    last closed ``<answer>`` tag, the generated task's reward as designed) padded with 0 or cut to 16; cell i of
    the answer is compared with cell i of the solution on every blank. Fields: ``cells_correct``,
    ``cells_total`` (the metric's inputs), ``extracted`` (the digits read), ``answer_from``, ``failure``
    (``ok``, ``no_answer``, ``wrong_cells``) and ``format_reward`` (:func:`sudoku_format_ok`).
    """
    if strict:
        tagged = last_answer_tag(completion)
        digits = None if tagged is None else "".join(ch for ch in tagged if ch.isdigit())
        source = "none" if tagged is None else "answer_tag"
    else:
        digits, source = extract_sudoku(completion)
    cells = (digits or "")[:CELLS].ljust(CELLS, "0")
    blanks = [i for i, ch in enumerate(puzzle) if ch == "0"]
    correct = sum(1 for i in blanks if cells[i] == solution[i])
    total = len(blanks)
    fraction = correct / total if total else 0.0
    solved = total > 0 and correct == total
    return Grade(
        reward=fraction,
        correct=solved,
        fields={
            "cells_correct": correct,
            "cells_total": total,
            "extracted": digits or None,
            "answer_from": source,
            "failure": "ok" if solved else "no_answer" if not digits else "wrong_cells",
            "format_reward": float(sudoku_format_ok(completion, reasoning)),
        },
    )


def sudoku_message(puzzle: str) -> str:
    """The instruction for a 4×4 puzzle (d1's format: reasoning, then 16 digits in an answer tag)."""
    rows = "\n".join(puzzle[r * SIZE : (r + 1) * SIZE] for r in range(SIZE))
    return (
        "Solve this 4x4 Sudoku. Fill every 0 with a digit from 1 to 4 so that each row, each column and each "
        "of the four 2x2 boxes contains 1, 2, 3 and 4 exactly once. The puzzle, row by row:\n"
        f"{rows}\n"
        "Respond in the format <reasoning>...</reasoning><answer>...</answer>, with the 16 digits of the "
        "solved grid, row by row, inside the answer tags."
    )


class SudokuTaskMixin:
    """Grading and metric shared by the real and the generated Sudoku tasks."""

    metric = "cell_accuracy"
    # The generated task keeps the strict reader: its SFT base's misformatted demonstrations (no closing tag)
    # must score 0, or RL has no format to fix (bgpo/tasks/generated.py).
    strict_answers: ClassVar[bool] = False
    asks_reasoning: ClassVar[bool] = True  # the real prompt asks for <reasoning>; the generated one does not

    def grade_one(self, completion: str, example: Example) -> Grade:
        """Partial credit over the blanks."""
        return sudoku_grade(
            completion, example.question, example.answer, strict=self.strict_answers, reasoning=self.asks_reasoning
        )

    def metric_inputs(self, grades: Sequence[Grade]) -> dict[str, list[int]]:
        """Cell accuracy over all empty cells: Σ correct / Σ blanks."""
        return {
            "predictions": [int(g.fields["cells_correct"]) for g in grades],
            "references": [int(g.fields["cells_total"]) for g in grades],
        }


@register_task("sudoku")
class Sudoku(SudokuTaskMixin, Task):
    """d1's 4×4 Sudoku test set (and training file, where present)."""

    display_name = "Sudoku"
    splits = ("train", "test")
    files: ClassVar[dict[str, str]] = {
        "test": "sudoku/4x4_test_sudoku.csv",
        "train": "sudoku/4x4_sudoku_unique_puzzles.csv",
    }

    def load(self, split: str = "test") -> list[Example]:
        """Read the CSV of ``split`` from ``data_dir`` (d1's files are not on the hub)."""
        self.check_split(split)
        path = self.local_file(self.files[split])
        if path is None:
            raise DataError(
                f"sudoku needs data_dir: d1's {self.files[split]} is not on the Hugging Face hub "
                "(use the generated task gen_sudoku without data)"
            )
        return [self.example_from_row(record, i, split) for i, record in enumerate(read_local(path))]

    def example_from_row(self, record: Record, index: int = 0, split: str = "test") -> Example:
        """A row with ``Puzzle`` and ``Solution`` (16 digits each, 0 = blank)."""
        puzzle, solution = str(record.get("Puzzle")).strip(), str(record.get("Solution")).strip()
        if len(puzzle) != CELLS or not puzzle.isdigit() or not set(puzzle) <= set("01234"):
            raise DataError(f"{record.source}: Puzzle must be 16 digits 0-4, got {puzzle!r}")
        if not is_solution(solution) or any(p not in ("0", s) for p, s in zip(puzzle, solution, strict=True)):
            raise DataError(f"{record.source}: Solution {solution!r} does not solve puzzle {puzzle!r}")
        return Example(id=f"sudoku/{index}", question=puzzle, answer=solution, source=record.source, row=record.data)

    def message(self, example: Example) -> str:
        """d1-style instructions with the grid."""
        return sudoku_message(example.question)

    def demonstration(self, example: Example) -> str:
        """The solved grid in the answer format."""
        reasoning = "Fill each blank with the digit its row, column and box lack."
        return f"<reasoning>{reasoning}</reasoning><answer>{example.answer}</answer>"
