"""DeepCoder-derived code problems: the code RL training set of the paper config (SPEC §4).

Data: hub ``agentica-org/DeepCoder-Preview-Dataset`` (configs ``lcbv5``, ``primeintellect``, ``taco``; split
``train``; columns ``problem``, ``tests``, ``starter_code``, ``metadata``; ``tests`` and ``metadata`` are JSON
strings), or ``data_dir/deepcoder/<config>.jsonl`` / ``.parquet`` with the same columns. The paper filters
~16K medium-difficulty problems from these three sets; its filter is not published, so ``max_problems``
and the per-set choice are options here.

The three sets store tests differently; all are normalised to standard-input tests (feed ``input``, compare
the printed lines, whitespace-trimmed) and call tests (call ``fn_name(*args)``, or ``Solution().fn_name``
for LeetCode-style starter code, and compare with the expected value, tuples read as lists):

* lcbv5: a list of ``{"input", "output", "testtype": "stdin" | "functional"}``; functional inputs hold one
  JSON argument per line, the function name is ``metadata.func_name``;
* primeintellect: a list of ``{"type": "stdin_stdout" | "function_call", "input", "output", "fn_name"}``;
  call inputs are argument lists, outputs ``[value]``;
* taco: one dict ``{"inputs": [...], "outputs": [...], "fn_name"?}``; with ``fn_name``, inputs are argument
  lists and outputs ``[value]``.

Grading: the completion's code runs in the sandbox after the reference grader's imports (:func:`with_prelude`);
the trusted harness executes every test (at most ``max_tests``, the longest inputs first, as rllm does), each
stdin test a fresh run of the program as a script whose printed lines must equal the expected ones exactly or,
line by line, as numbers (LiveCodeBench's reading: ``0.5`` = ``0.500000000``), and passes only if all pass.
Reward 1 or 0.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from . import Example, Grade, Task, register_task
from .code_exec import CodeRunner, extract_code
from .data import DataError, Record, read_hub, read_local

CONFIGS = ("lcbv5", "primeintellect", "taco")

# The tests run in the sandbox's trusted harness; the program in a process of its own, reached through
# ``__program__``. TESTS and FN are filled in with repr(); nothing else is formatted.
TESTS = """
import json
from decimal import Decimal, InvalidOperation
TESTS = json.loads({tests!r})
FN = {fn_name!r}

def _lines(text):
    return [line.strip() for line in str(text).strip().splitlines()]

def _decimals(line):
    try:
        return [Decimal(token) for token in line.split()]
    except InvalidOperation:
        return None

def _same_output(got, want):
    got, want = _lines(got), _lines(want)
    if got == want:
        return True
    # LiveCodeBench's second reading: a line of numbers equals one with the same values (0.5 = 0.500000000,
    # "1  2" = "1 2")
    if len(got) != len(want):
        return False
    for a, b in zip(got, want):
        if a != b and (_decimals(a) is None or _decimals(a) != _decimals(b)):
            return False
    return True

def _same(got, want):
    if isinstance(got, tuple):
        got = list(got)
    if got == want:
        return True
    try:
        return abs(float(got) - float(want)) < 1e-6
    except (TypeError, ValueError):
        return False

if any(test["kind"] == "call" for test in TESTS):
    __program__.load()
for test in TESTS:
    if test["kind"] == "stdin":
        assert _same_output(__program__.run(test["input"]), test["output"])
    else:
        solution = __program__.get("Solution")() if __program__.defines("Solution") else None
        target = getattr(solution, FN) if solution is not None else __program__.get(FN)
        assert _same(target(*test["args"]), test["output"])
"""


# What LiveCodeBench's grader (and rllm's, which DeepCoder trains with) imports before a solution: LeetCode-style
# solutions use Counter, heapq, inf or List without importing them.
PRELUDE_MODULES = (
    "string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math", "random", "statistics",
    "itertools", "functools", "operator", "io", "sys", "json", "builtins", "typing",
)  # fmt: skip
_FUTURE = re.compile(r"^from __future__ import .*$", re.MULTILINE)


def with_prelude(code: str) -> str:
    """``code`` after the reference grader's imports (``from m import *`` and ``import m`` for each of
    :data:`PRELUDE_MODULES`; ``builtins`` last among the star imports, so no builtin stays shadowed) and its
    recursion limit; ``from __future__`` lines stay first, where Python requires them."""
    futures = _FUTURE.findall(code)
    body = _FUTURE.sub("", code) if futures else code
    prelude = [f"from {m} import *" for m in PRELUDE_MODULES if m != "builtins"] + ["from builtins import *"]
    prelude += [f"import {m}" for m in PRELUDE_MODULES if m not in ("builtins", "typing")]
    prelude.append("sys.setrecursionlimit(50000)")
    return "\n".join([*futures, *prelude, "", body])


def _json(value: Any, source: str, field: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as err:
            raise DataError(f"{source}: field {field!r} is not valid JSON ({err.msg})") from None
    return value


def normalise_tests(raw: Any, metadata: Any, source: str) -> tuple[list[dict[str, Any]], str | None]:
    """Tests of any of the three layouts as ``[{"kind": "stdin", "input", "output"} | {"kind": "call", "args",
    "output"}]`` and the function name of call tests."""
    tests = _json(raw, source, "tests")
    meta = _json(metadata, source, "metadata") if metadata else {}
    fn_name = meta.get("func_name") if isinstance(meta, dict) else None
    out: list[dict[str, Any]] = []
    if isinstance(tests, dict):  # taco
        inputs, outputs = tests.get("inputs"), tests.get("outputs")
        if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
            raise DataError(f"{source}: taco-style tests need equal-length 'inputs' and 'outputs' lists")
        fn_name = tests.get("fn_name") or fn_name
        for given, want in zip(inputs, outputs, strict=True):
            if fn_name:
                out.append(
                    {
                        "kind": "call",
                        "args": given,
                        "output": want[0] if isinstance(want, list) and len(want) == 1 else want,
                    }
                )
            else:
                out.append({"kind": "stdin", "input": _text(given), "output": _text(want)})
        return out, fn_name
    if not isinstance(tests, list):
        raise DataError(f"{source}: 'tests' must be a list or a dict, got {type(tests).__name__}")
    for test in tests:
        kind = test.get("testtype") or test.get("type")
        if kind in ("stdin", "stdin_stdout"):
            out.append({"kind": "stdin", "input": _text(test["input"]), "output": _text(test["output"])})
        elif kind == "functional":  # lcbv5: one JSON argument per line
            args = [json.loads(line) for line in str(test["input"]).split("\n") if line.strip()]
            out.append({"kind": "call", "args": args, "output": json.loads(test["output"])})
            fn_name = fn_name or (test.get("metadata") or {}).get("func_name")
        elif kind == "function_call":  # primeintellect
            want = test["output"]
            out.append(
                {
                    "kind": "call",
                    "args": test["input"],
                    "output": want[0] if isinstance(want, list) and len(want) == 1 else want,
                }
            )
            fn_name = fn_name or test.get("fn_name")
        else:
            raise DataError(
                f"{source}: unknown test type {kind!r} (expected stdin, functional, stdin_stdout or function_call)"
            )
    if any(t["kind"] == "call" for t in out) and not fn_name:
        raise DataError(f"{source}: call tests without a function name (metadata.func_name or fn_name)")
    return out, fn_name


def _text(value: Any) -> str:
    return "\n".join(map(str, value)) if isinstance(value, list) else str(value)


def test_source(tests: Sequence[dict[str, Any]], fn_name: str | None) -> str:
    """The tests of a problem, as source for the sandbox's harness (stdin tests run the program as a script,
    call tests call its function)."""
    return TESTS.format(tests=json.dumps(list(tests)), fn_name=fn_name or "")


@register_task("deepcoder")
class DeepCoder(Task):
    """DeepCoder-Preview training problems (lcbv5, primeintellect, taco)."""

    display_name = "DeepCoder"
    splits = ("train",)
    hub_id = "agentica-org/DeepCoder-Preview-Dataset"

    def __init__(
        self,
        data_dir: str | None = None,
        *,
        configs: Sequence[str] = CONFIGS,
        max_tests: int = 15,
        max_problems: int | None = None,
        backend: str = "auto",
        timeout: float = 30.0,
    ) -> None:
        super().__init__(data_dir)
        bad = [c for c in configs if c not in CONFIGS]
        if bad:
            raise DataError(f"deepcoder: unknown config {bad[0]!r}; valid: {', '.join(CONFIGS)}")
        self.configs, self.max_tests, self.max_problems = tuple(configs), max_tests, max_problems
        from ..sandbox import SandboxLimits

        self.runner = CodeRunner(SandboxLimits(wall_time=timeout, cpu_time=max(1, int(timeout))), backend=backend)

    def _records(self, config: str) -> list[Record]:
        for suffix in (".jsonl", ".parquet"):
            path = self.local_file(f"deepcoder/{config}{suffix}")
            if path is not None and path.is_file():
                return read_local(path)
        if self.data_dir is not None:
            raise DataError(f"deepcoder: no {self.data_dir}/deepcoder/{config}.jsonl or .parquet")
        return read_hub(self.hub_id, "train", config)

    def load(self, split: str = "train") -> list[Example]:
        """Problems of every configured set, tests normalised (see the module docstring)."""
        self.check_split(split)
        examples = []
        for config in self.configs:
            for i, record in enumerate(self._records(config)):
                example = self._example(record, f"deepcoder/{config}/{i}")
                if not example.meta["tests"]:
                    continue
                examples.append(example)
                if self.max_problems is not None and len(examples) >= self.max_problems:
                    return examples
        return examples

    def _example(self, record: Record, id: str) -> Example:
        tests, fn_name = normalise_tests(record.get("tests"), record.data.get("metadata"), record.source)
        tests = sorted(tests, key=lambda t: -len(json.dumps(t.get("input", t.get("args")))))[: self.max_tests]
        return Example(
            id=id,
            question=record.get("problem", str),
            answer=None,
            meta={"tests": tests, "fn_name": fn_name, "starter_code": record.data.get("starter_code") or ""},
            source=record.source,
            row=record.data,
        )

    def example_from_row(self, record: Record, index: int = 0, split: str = "train") -> Example:
        """A row with ``problem``, ``tests`` (any of the three sets' layouts), ``starter_code``, ``metadata``."""
        example = self._example(record, f"deepcoder/{split}/{index}")
        if not example.meta["tests"]:
            raise DataError(f"{record.source}: no tests to run")
        return example

    def message(self, example: Example) -> str:
        """The problem, the starter code if any, and the answer format."""
        starter = example.meta["starter_code"]
        io_note = (
            "Read the input from standard input and print the answer."
            if all(t["kind"] == "stdin" for t in example.meta["tests"])
            else "Complete the given function."
        )
        code = f"\n```python\n{starter}\n```" if starter else ""
        return f"{example.question.strip()}\n{io_note}{code}\nReturn your solution in a ```python code block."

    def grade(self, completions: Sequence[str], examples: Sequence[Example]) -> list[Grade]:
        """Run every completion's code through its tests in the sandbox, in parallel."""
        codes = [with_prelude(extract_code(c)) for c in completions]
        tests = [test_source(e.meta["tests"], e.meta["fn_name"]) for e in examples]
        runs = self.runner.run(codes, tests, load=False)
        return [Grade(float(r.passed), r.passed, {"status": r.status}) for r in runs]
