"""Scoring completions: per-example records and a task's metrics, shared by ``bgpo evaluate`` and ``bgpo grade``.

The JSONL that ``bgpo evaluate`` writes and ``bgpo grade`` reads has one line per example: the benchmark row in
the task's own data format (:meth:`~bgpo.tasks.Task.data_row`: GSM8K ``question``/``answer``, d1 Countdown
``input``/``output``, d1 Sudoku ``Puzzle``/``Solution``, MATH500 ``problem``/``answer``, HumanEval and MBPP
rows), the model's ``completion``, and the grading: ``reward``, ``correct`` and the grade's fields
(``extracted``, ``answer_from``, ``failure``, ``format_reward``, Sudoku's cell counts, code's sandbox status).
``bgpo evaluate`` adds ``id`` and ``model_input`` (the rendered prompt). Grading the file again gives the same
records and metrics: generate-then-grade is two commands, and released generations of other projects are
rescored by writing them in this format. No torch here: grading needs none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .metrics import compute_metric
from .tasks import Example, Grade, Task
from .tasks.data import DataError, read_local

# Keys of a record that are not grade fields.
_NOT_FIELDS = {"reward", "correct", "completion", "model_input", "id"}


def scored_record(row: Mapping[str, Any], completion: str, grade: Grade) -> dict[str, Any]:
    """One JSONL record: the row's fields, the completion, the reward, ``correct`` and the grade's plain fields."""
    fields = {k: v for k, v in grade.fields.items() if v is None or isinstance(v, (int, float, str, bool))}
    return {**row, "completion": completion, "reward": grade.reward, "correct": grade.correct, **fields}


def task_metrics(task: Task, records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The task's metric, ``accuracy`` (solved examples; for Sudoku, fully solved puzzles), the mean reward and
    the mean format reward, from per-example records (e.g. gathered from several processes)."""
    grades = [Grade(r["reward"], r["correct"], {k: v for k, v in r.items() if k not in _NOT_FIELDS}) for r in records]
    metrics = compute_metric(task.metric, **task.metric_inputs(grades))
    if "accuracy" not in metrics:
        metrics["accuracy"] = sum(g.correct for g in grades) / len(grades) if grades else float("nan")
    metrics["mean_reward"] = sum(g.reward for g in grades) / max(len(grades), 1)
    formats = [g.fields["format_reward"] for g in grades if g.fields.get("format_reward") is not None]
    if formats:
        metrics["format_reward"] = sum(formats) / len(formats)
    return metrics


def failure_counts(records: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many records fall in each failure class (``ok`` for the solved; code tasks: the sandbox status)."""
    return dict(Counter(failure_class(r) for r in records).most_common())


def failure_class(record: Mapping[str, Any]) -> str:
    """The failure class of a record: its ``failure`` field, else ``ok`` or the sandbox ``status``."""
    if record.get("failure"):
        return str(record["failure"])
    return "ok" if record.get("correct") else str(record.get("status") or "wrong")


def read_completions(task: Task, path: str | Path, split: str = "test") -> tuple[list[Example], list[dict[str, Any]]]:
    """Read a JSONL of benchmark rows with a ``completion`` each: the examples and the raw rows.

    A malformed line (invalid JSON, a missing or mistyped field, a row the task cannot read) is a
    :class:`~bgpo.tasks.data.DataError` naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (give a JSONL of benchmark rows, each with a 'completion' field)")
    records = read_local(path)
    if not records:
        raise DataError(f"{path}: no rows")
    examples, rows = [], []
    for i, record in enumerate(records):
        record.get("completion", str)
        examples.append(task.example_from_row(record, i, split))
        rows.append(record.data)
    return examples, rows


def grade_rows(
    task: Task, examples: Sequence[Example], rows: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Grade the ``completion`` of each row (code tasks in the sandbox, in parallel): records and metrics."""
    completions = [str(r["completion"]) for r in rows]
    grades = task.grade(completions, examples)
    records = [scored_record(r, c, g) for r, c, g in zip(rows, completions, grades, strict=True)]
    return records, task_metrics(task, records)
