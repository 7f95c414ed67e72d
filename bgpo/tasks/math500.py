"""MATH500 (Lightman et al., 2023: the 500-problem MATH test subset of PRM800K) and MATH train (SPEC §4).

Data: test, hub ``HuggingFaceH4/MATH-500`` or ``data_dir/math500/test.jsonl`` (fields ``problem``,
``solution``, ``answer``); train, hub ``EleutherAI/hendrycks_math`` (one config per subject; fields
``problem``, ``solution``, no ``answer``: it is the solution's last ``\\boxed{}``) or
``data_dir/math500/train.jsonl`` (PRM800K's math_splits/train.jsonl, not in ../shared/data).
Reward and metric: math-verify equivalence of the last ``\\boxed{}`` with ``answer``; accuracy.
"""

from __future__ import annotations

from . import Example, Task, last_boxed, register_task
from .data import DataError, Record, read_hub, read_local
from .gsm8k import MathTaskMixin, math_message

MATH_SUBJECTS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)


@register_task("math500")
class MATH500(MathTaskMixin, Task):
    """MATH500 test (500) and the MATH training problems."""

    display_name = "MATH500"
    splits = ("train", "test")
    hub_test = "HuggingFaceH4/MATH-500"
    hub_train = "EleutherAI/hendrycks_math"

    def _records(self, split: str) -> list[Record]:
        path = self.local_file(f"math500/{split}.jsonl")
        if path is not None:
            return read_local(path)
        if split == "test":
            return read_hub(self.hub_test, "test")
        return [r for subject in MATH_SUBJECTS for r in read_hub(self.hub_train, "train", subject)]

    def load(self, split: str = "test") -> list[Example]:
        """Rows with ``problem`` and ``answer`` (or a ``solution`` whose last ``\\boxed{}`` is the answer)."""
        self.check_split(split)
        return [self.example_from_row(record, i, split) for i, record in enumerate(self._records(split))]

    def example_from_row(self, record: Record, index: int = 0, split: str = "test") -> Example:
        """A row with ``problem`` and ``answer`` (or a ``solution`` whose last ``\\boxed{}`` is the answer)."""
        problem = record.get("problem", str)
        solution = record.data.get("solution")
        answer = record.data.get("answer") or (last_boxed(solution) if isinstance(solution, str) else None)
        if not answer:
            raise DataError(f"{record.source}: no 'answer' field and no \\boxed{{}} in 'solution'")
        return Example(
            id=str(record.data.get("unique_id", f"math500/{split}/{index}")),
            question=problem,
            answer=str(answer),
            meta={"solution": solution},
            source=record.source,
            row=record.data,
        )

    def message(self, example: Example) -> str:
        """The problem and the boxed-answer instruction."""
        return math_message(example.question)

    def demonstration(self, example: Example) -> str | None:
        """The reference solution (it ends in the boxed answer)."""
        solution = example.meta.get("solution")
        return solution if isinstance(solution, str) and last_boxed(solution) else None
