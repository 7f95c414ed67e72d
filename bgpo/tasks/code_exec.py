"""Grading code by executing tests in the sandbox (HumanEval, MBPP, DeepCoder, the generated code task).

Each (code, tests) pair runs in the sandbox under the trusted harness ``bgpo/sandbox_harness.py``: the code
runs in a process of its own, the tests in the harness's process, and the harness alone writes the verdict,
on a pipe the program never holds. The tests see the program's values only as builtin values decoded by the
harness (or as handles to call), so ``sys.exit(0)``, ``os._exit(0)``, printing a marker, an object whose
``__eq__`` always returns True or a lying ``int`` subclass cannot make a failing program pass; the module
docstring of ``bgpo/sandbox_harness.py`` says what is and is not guaranteed. A pass needs every test to have
run (the tests ran to their end, and at least one ``assert`` executed).

The tests are trusted source (the benchmark's asserts, HumanEval's ``check``): they may define helpers and
import modules, and they reach the program's names (functions, classes, constants) by name.
"""

from __future__ import annotations

import ast
import functools
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..sandbox import RunResult, Sandbox, SandboxLimits, harness_source, resolve_backend
from ..sandbox_harness import encode

# An opening fence with any language tag (```python3, ``` python, ```py) and the code up to the closing fence,
# or to the end where the response ran out inside the block (lm-evaluation-harness reads any tag).
_FENCE = re.compile(r"```[ \t]*[\w+.-]*[ \t]*\n(.*?)(?:```|$)", re.DOTALL)
_COUNTER = "_bgpo_assert_ran"  # the harness's assert counter, called after every assert of the tests


def extract_code(completion: str) -> str:
    """The code in a completion: the first fenced block, else the text itself; first cut to what lies between
    ``[BEGIN]`` and ``[DONE]`` where the completion has them (MBPP's format: lm-evaluation-harness stops at
    ``[DONE]`` before it looks for a fence, so code the model goes on to write after it is not graded).

    A fence that is never closed (the response ran out) still yields its content.
    """
    begin, done = completion.find("[BEGIN]"), completion.find("[DONE]")
    if begin != -1 and (done == -1 or begin < done):  # a [BEGIN] after [DONE] opens an invented next problem
        completion = completion[begin + len("[BEGIN]") :]
    completion = completion.split("[DONE]", 1)[0]
    fenced = _FENCE.search(completion)
    if fenced:
        return fenced.group(1)
    return completion.strip("\n")


@dataclass
class TestRun:
    """The outcome of one program's tests."""

    passed: bool
    # "passed"; "failed" (an assert failed or a test raised); "exited" (the program's process ended or broke
    # the protocol before the tests finished); "no-verdict" (the harness was killed); "timeout"; "error"
    status: str
    detail: str  # why it failed: the harness's report, else the last lines of stderr


class CodeRunner:
    """Runs ``code`` against ``tests`` in a shared :class:`~bgpo.sandbox.Sandbox` under the trusted harness.

    Args:
        limits: the per-run limits.
        backend: ``auto`` (bubblewrap, else an error), ``bwrap``, or ``rlimit-unsafe`` (no isolation; only by
            that name).
        workers: runs in flight (default: the sandbox's).
    """

    def __init__(self, limits: SandboxLimits | None = None, backend: str = "auto", workers: int | None = None) -> None:
        self.limits = limits or SandboxLimits(wall_time=10.0, cpu_time=10)
        self.requested_backend = backend
        self.workers = workers
        self._sandbox: Sandbox | None = None

    @property
    def sandbox(self) -> Sandbox:
        """The sandbox, created on first use (probing for bubblewrap takes a moment)."""
        if self._sandbox is None:
            self._sandbox = Sandbox(self.limits, backend=self.requested_backend)
        return self._sandbox

    @property
    def backend(self) -> str:
        """The backend the runs use (``bwrap`` or ``rlimit-unsafe``): what a run's metadata records."""
        if self._sandbox is not None:
            return self._sandbox.backend
        return resolve_backend(self.requested_backend)

    def run(self, codes: Sequence[str], tests: Sequence[str], *, load: bool = True) -> list[TestRun]:
        """Run each ``code`` against its ``tests`` (Python source); results in input order.

        With ``load``, the code is executed as a module before the tests (their names reach its functions);
        without, the tests drive it through ``__program__`` (``run(stdin)``, ``load()``, ``get(name)``,
        ``defines(name)``). Identical (code, tests) pairs run once: a group of rollouts often repeats a
        completion, and a small policy repeats most of them, so this saves most of the sandbox time of a code
        reward.
        """
        pairs = list(zip(codes, tests, strict=True))
        slot: dict[tuple[str, str], int] = {}
        for pair in pairs:
            slot.setdefault(pair, len(slot))
        unique: list[TestRun | None] = [_syntax_error(code) for code, _ in slot]
        runnable = [i for i, outcome in enumerate(unique) if outcome is None]
        jobs = []
        keys = list(slot)
        for i in runnable:
            code, test = keys[i]
            instrumented, setup = instrument_tests(test)
            jobs.append(encode((code, instrumented, setup, load), None))
        harness = harness_source()
        results = self.sandbox.run_many(
            [harness] * len(jobs), workers=self.workers, stdins=jobs, verdict=True, compiled=True
        )
        for i, result in zip(runnable, results, strict=True):
            unique[i] = self._outcome(result)
        return [unique[slot[pair]] for pair in pairs]  # type: ignore[misc]

    @staticmethod
    def _outcome(result: RunResult) -> TestRun:
        """Classify one sandbox result by the harness's verdict."""
        tail = "\n".join(result.stderr.strip().splitlines()[-3:])
        if result.error:
            return TestRun(False, "error", result.error)
        if result.timed_out:
            return TestRun(False, "timeout", tail)
        try:  # "<passed> <asserts> <exited>\n<detail>"
            head, _, detail = (result.verdict or "").partition("\n")
            passed, asserts, exited = (int(x) for x in head.split(" "))
        except ValueError:
            return TestRun(False, "no-verdict", tail or f"the harness ended (status {result.returncode}) unheard")
        if passed != 1:
            return TestRun(False, "exited" if exited else "failed", detail or tail)
        if asserts < 1:
            return TestRun(False, "failed", "no assert ran: the tests check nothing")
        if result.returncode != 0:
            return TestRun(False, "no-verdict", f"the harness ended with status {result.returncode}")
        return TestRun(True, "passed", "")


def sandbox_backends(tasks: Iterable[Any]) -> dict[str, str]:
    """The sandbox backend each code task among ``tasks`` grades with, by task name: ``bwrap``, or
    ``rlimit-unsafe`` where the run opted in to it. What a run's metadata records."""
    return {task.name: task.runner.backend for task in tasks if isinstance(getattr(task, "runner", None), CodeRunner)}


@functools.lru_cache(maxsize=4096)
def instrument_tests(tests: str) -> tuple[str, str]:
    """The tests with a counter call after every ``assert``, and their top-level imports.

    The imports also run in the program's module after its code, as they would in a single program of code
    and tests (a program may rely on the tests' ``import math``).
    """
    tree = ast.parse(tests)
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    tree = _CountAsserts().visit(tree)
    ast.fix_missing_locations(tree)
    return ast.unparse(tree), "\n".join(ast.unparse(node) for node in imports)


class _CountAsserts(ast.NodeTransformer):
    def visit_Assert(self, node: ast.Assert) -> list[ast.stmt]:
        count = ast.Expr(ast.Call(ast.Name(_COUNTER, ast.Load()), [], []))
        return [node, ast.copy_location(count, node)]


def _syntax_error(code: str) -> TestRun | None:
    """A failed run for code that does not compile, else None.

    Compiling executes nothing (the compiler's constant folding is size-bounded), so code that cannot pass
    is answered without starting a sandbox: a small policy writes much of it.
    """
    try:
        with warnings.catch_warnings():  # an invalid escape sequence is the program's business, not a failure
            warnings.simplefilter("ignore")
            compile(code, "<program>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, MemoryError, RecursionError, OverflowError) as exc:
        return TestRun(False, "failed", f"{type(exc).__name__}: {exc}")
    return None
