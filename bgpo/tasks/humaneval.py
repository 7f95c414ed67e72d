"""HumanEval (Chen et al., 2021): 164 Python functions to complete, graded by their unit tests (SPEC §4).

Data: hub ``openai/openai_humaneval`` (split ``test``) or ``data_dir/humaneval/HumanEval.jsonl.gz``.
Prompt: the function signature and docstring in a code block, with the instruction to return the whole
function. Grading: the code of the completion (its first fenced block, else the raw text) runs after the
prompt (so the prompt's imports and helpers exist; a completion that only continues the body works too),
then the task's ``check(entry_point)``, in the sandbox (the checker runs in the trusted harness, with the
prompt's own helpers: ``humaneval_tests``). Reward 1 if every test passes; metric pass@1.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import Example, Grade, Task, register_task
from .code_exec import CodeRunner, extract_code
from .data import Record, read_hub, read_local


def humaneval_program(completion: str, example: Example) -> str:
    """The program to test: prompt, then the completion's code (a full function or a body continuation)."""
    code = extract_code(completion)
    prompt = example.question
    if f"def {example.meta['entry_point']}" in code:
        return f"{prompt}\n    pass\n\n{code}"  # the stub gets a body; the completion's definition replaces it
    return prompt + code


def humaneval_tests(example: Example) -> str:
    """The tests: the prompt's helpers (trusted, in the harness), then ``check(entry_point)``.

    The prompt runs with a stub for the entry point, which is then replaced by the program's function, so
    helpers the checker calls (``poly`` of HumanEval/32, ``encode_cyclic`` of /38) are the prompt's own: a
    program that redefines them does not change what its answer is checked with.
    """
    entry = example.meta["entry_point"]
    bind = f"{entry} = __program__.get({entry!r})"
    return f"{example.question}\n    pass\n\n\n{bind}\n\n{example.meta['test']}\n\ncheck({entry})\n"


@register_task("humaneval")
class HumanEval(Task):
    """HumanEval, 164 problems."""

    display_name = "HumanEval"
    splits = ("test",)
    hub_id = "openai/openai_humaneval"

    def __init__(self, data_dir: str | None = None, *, backend: str = "auto", timeout: float = 10.0) -> None:
        super().__init__(data_dir)
        from ..sandbox import SandboxLimits

        self.runner = CodeRunner(SandboxLimits(wall_time=timeout, cpu_time=max(1, int(timeout))), backend=backend)

    def load(self, split: str = "test") -> list[Example]:
        """Rows with task_id, prompt, canonical_solution, test, entry_point."""
        self.check_split(split)
        path = self.local_file("humaneval/HumanEval.jsonl.gz")
        records = read_local(path) if path is not None else read_hub(self.hub_id, "test")
        return [self.example_from_row(r, i, split) for i, r in enumerate(records)]

    def example_from_row(self, record: Record, index: int = 0, split: str = "test") -> Example:
        """A row with task_id, prompt, canonical_solution, test, entry_point."""
        return Example(
            id=record.get("task_id", str),
            question=record.get("prompt", str),
            answer=record.get("canonical_solution", str),
            meta={"test": record.get("test", str), "entry_point": record.get("entry_point", str)},
            source=record.source,
            row=record.data,
        )

    def message(self, example: Example) -> str:
        """The instruction and the function stub."""
        return (
            "Complete the following Python function. Return the whole function, with its imports, in a "
            f"```python code block.\n```python\n{example.question}```"
        )

    def demonstration(self, example: Example) -> str:
        """The canonical solution as a whole function."""
        return f"```python\n{example.question}{example.answer}```"

    def grade(self, completions: Sequence[str], examples: Sequence[Example]) -> list[Grade]:
        """Run every completion against its tests in the sandbox, in parallel."""
        codes = [humaneval_program(c, e) for c, e in zip(completions, examples, strict=True)]
        tests = [humaneval_tests(e) for e in examples]
        runs = self.runner.run(codes, tests)
        return [Grade(float(r.passed), r.passed, {"status": r.status, "detail": r.detail}) for r in runs]
