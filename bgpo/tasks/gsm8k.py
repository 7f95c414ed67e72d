"""GSM8K (Cobbe et al., 2021): grade-school math word problems; test 1319, train 7473 (SPEC §4).

Data: hub ``openai/gsm8k`` (config ``main``), or ``data_dir/gsm8k/{train,test}.jsonl`` (the original files).
The reference answer is the number after ``####`` in the ``answer`` field (thousands separators dropped).
Reward and metric: 1 if the last ``\\boxed{}`` of the completion (else its last ``<answer>`` tag) is
equivalent to the reference under math-verify or, as d1's GSM8K evaluation reads it, is the reference number
(a number with words or units around it counts as the number); else 0; accuracy
(:mod:`bgpo.tasks.math_grading`).
"""

from __future__ import annotations

import re
from typing import ClassVar

from . import Example, Grade, Task, register_task
from .data import DataError, Record, read_hub, read_local
from .math_grading import math_grade

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
_CALCULATOR = re.compile(r"<<[^>]*>>")


def math_message(problem: str) -> str:
    """A math problem followed by the step-by-step/boxed instruction."""
    return f"{problem.strip()}\n{MATH_INSTRUCTION}"


class MathTaskMixin:
    """Grading of math answers (GSM8K, MATH500): :func:`~bgpo.tasks.math_grading.math_grade`."""

    numeric_answers: ClassVar[bool] = False  # GSM8K: also d1's numeric reading of the box

    def grade_one(self, completion: str, example: Example) -> Grade:
        """math-verify on the final answer."""
        return math_grade(completion, example.answer, numeric=self.numeric_answers)


@register_task("gsm8k")
class GSM8K(MathTaskMixin, Task):
    """GSM8K test (1319) and train (7473)."""

    display_name = "GSM8K"
    splits = ("train", "test")
    numeric_answers = True
    hub_id, hub_config = "openai/gsm8k", "main"

    def load(self, split: str = "test") -> list[Example]:
        """Rows with ``question`` and ``answer`` ("reasoning ... #### 72")."""
        self.check_split(split)
        path = self.local_file(f"gsm8k/{split}.jsonl")
        records = read_local(path) if path is not None else read_hub(self.hub_id, split, self.hub_config)
        return [self.example_from_row(record, i, split) for i, record in enumerate(records)]

    def example_from_row(self, record: Record, index: int = 0, split: str = "test") -> Example:
        """A row with ``question`` and ``answer`` ("reasoning ... #### 72")."""
        question, solution = record.get("question", str), record.get("answer", str)
        if "####" not in solution:
            raise DataError(f"{record.source}: answer has no '####' final line: {solution[-80:]!r}")
        reasoning, final = solution.rsplit("####", 1)
        final = final.strip().replace(",", "")
        if not final:
            raise DataError(f"{record.source}: empty answer after '####'")
        return Example(
            id=f"gsm8k/{split}/{index}",
            question=question,
            answer=final,
            meta={"reasoning": _CALCULATOR.sub("", reasoning).strip()},
            source=record.source,
            row=record.data,
        )

    def message(self, example: Example) -> str:
        """The problem and the boxed-answer instruction."""
        return math_message(example.question)

    def demonstration(self, example: Example) -> str:
        """The reference reasoning (calculator annotations removed) and the boxed answer."""
        return f"{example.meta['reasoning']}\nThe answer is \\boxed{{{example.answer}}}."
