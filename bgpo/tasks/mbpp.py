"""MBPP (Austin et al., 2021): basic Python problems graded by three asserts (SPEC §4).

Data: hub ``google-research-datasets/mbpp`` (config ``full`` or ``sanitized``) or, locally, the original
``data_dir/mbpp/mbpp.jsonl`` (974 rows) and ``data_dir/mbpp/sanitized-mbpp.json`` (427 rows). Splits follow
the task ids of the original release: prompt 1–10, test 11–510 (500; 257 in the sanitized set), validation
511–600, train 601–974.

Prompt: 3-shot in the ``[BEGIN]``/``[DONE]`` format (lm-evaluation-harness's ``mbpp`` task), shots from task
ids 2, 3 and 4. Grading: the completion's code (a fenced block, else the text between ``[BEGIN]`` and
``[DONE]``) followed by the setup code and the asserts, in the sandbox; reward 1 if all pass; pass@1.
"""

from __future__ import annotations

import ast
import builtins
import warnings
from collections.abc import Sequence

from . import Example, Grade, Task, register_task
from .code_exec import CodeRunner, extract_code
from .data import DataError, Record, read_hub, read_local

SPLIT_IDS = {"prompt": range(1, 11), "test": range(11, 511), "validation": range(511, 601), "train": range(601, 975)}
SHOT_IDS = (2, 3, 4)


def mbpp_query(text: str, tests: Sequence[str]) -> str:
    """One problem in the lm-evaluation-harness format, up to and including ``[BEGIN]``."""
    listed = "\n".join(tests)
    return (
        f"You are an expert Python programmer, and here is your task: {text} "
        f"Your code should pass these tests:\n\n{listed}\n[BEGIN]\n"
    )


@register_task("mbpp")
class MBPP(Task):
    """MBPP, the full release (test: 500 problems)."""

    display_name = "MBPP"
    splits = ("train", "test", "validation", "prompt")
    hub_id, hub_config = "google-research-datasets/mbpp", "full"
    local_name = "mbpp/mbpp.jsonl"
    text_field, setup_field = "text", "test_setup_code"

    def __init__(self, data_dir: str | None = None, *, backend: str = "auto", timeout: float = 10.0) -> None:
        super().__init__(data_dir)
        from ..sandbox import SandboxLimits

        self.runner = CodeRunner(SandboxLimits(wall_time=timeout, cpu_time=max(1, int(timeout))), backend=backend)
        self._shots: list[Example] | None = None

    def _records(self) -> list[Record]:
        path = self.local_file(self.local_name)
        if path is not None:
            return read_local(path)
        return [
            r
            for split in ("train", "test", "validation", "prompt")
            for r in read_hub(self.hub_id, split, self.hub_config)
        ]

    def example_from_row(self, record: Record, index: int = 0, split: str = "test") -> Example:
        """A row of the release: task_id, the task text, code, setup code (or imports) and test_list."""
        setup = record.data.get(self.setup_field) or ""
        if isinstance(setup, list):  # the sanitized set lists its imports
            setup = "\n".join(setup)
        tests = record.get("test_list", list)
        if not all(isinstance(t, str) for t in tests):
            bad = next(t for t in tests if not isinstance(t, str))
            raise DataError(f"{record.source}: test_list must hold assert statements as strings, got {bad!r:.80}")
        return Example(
            id=f"{self.name}/{record.get('task_id', int)}",
            question=record.get(self.text_field, str),
            answer=record.get("code", str),
            meta={"task_id": record.get("task_id", int), "tests": tests, "setup": setup},
            source=record.source,
            row=record.data,
        )

    def _all(self) -> list[Example]:
        return [self.example_from_row(r, i) for i, r in enumerate(self._records())]

    def load(self, split: str = "test") -> list[Example]:
        """The problems whose task ids belong to ``split``."""
        self.check_split(split)
        ids = SPLIT_IDS[split]
        return [e for e in self._all() if e.meta["task_id"] in ids]

    def shots(self) -> list[Example]:
        """The three few-shot examples (task ids 2, 3, 4)."""
        if self._shots is None:
            by_id = {e.meta["task_id"]: e for e in self._all()}
            self._shots = [by_id[i] for i in SHOT_IDS]
        return self._shots

    def message(self, example: Example) -> str:
        """Three solved examples, then the problem, ending with ``[BEGIN]``."""
        shots = "".join(f"{mbpp_query(s.question, s.meta['tests'])}{s.answer}\n[DONE]\n\n" for s in self.shots())
        return shots + mbpp_query(example.question, example.meta["tests"])

    def demonstration(self, example: Example) -> str:
        """The reference code and ``[DONE]``."""
        return f"{example.answer}\n[DONE]"

    def tests_of(self, example: Example) -> str:
        """Setup code and asserts (they run in the sandbox's trusted harness).

        The tests' names resolve to the builtins before the program's (a program's own ``abs`` does not change
        what a test computes), so a function of the reference that has a builtin's name (task 126 defines
        ``sum``) is taken from the program explicitly.
        """
        try:
            with warnings.catch_warnings():  # invalid escape sequences in some references
                warnings.simplefilter("ignore")
                body = ast.parse(example.answer).body
        except SyntaxError:
            body = []
        defined = {n.name for n in body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        bindings = [f"{name} = __program__.get({name!r})" for name in sorted(defined) if hasattr(builtins, name)]
        return "\n".join([example.meta["setup"], *bindings, *example.meta["tests"]])

    def grade(self, completions: Sequence[str], examples: Sequence[Example]) -> list[Grade]:
        """Run the extracted code and the asserts in the sandbox, in parallel."""
        runs = self.runner.run([extract_code(c) for c in completions], [self.tests_of(e) for e in examples])
        return [Grade(float(r.passed), r.passed, {"status": r.status, "detail": r.detail}) for r in runs]


@register_task("mbpp_sanitized")
class MBPPSanitized(MBPP):
    """MBPP's hand-verified subset (test: 257 problems); ``prompt`` is the task text, ``test_imports`` the setup."""

    display_name = "MBPP (sanitized)"
    hub_config = "sanitized"
    local_name = "mbpp/sanitized-mbpp.json"
    text_field, setup_field = "prompt", "test_imports"
