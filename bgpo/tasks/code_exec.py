"""Grading code by executing tests in the sandbox (HumanEval, MBPP, the generated code task).

A completion passes if the program made of its code and the task's tests exits with status 0 **and** prints
a random per-run nonce that the test harness prints after the last test: ``sys.exit(0)`` or ``os._exit(0)``
before the tests would otherwise count as a pass.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from ..sandbox import RunResult, Sandbox, SandboxLimits

_FENCE = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL)


def extract_code(completion: str) -> str:
    """The code in a completion: the first fenced block, else the text between [BEGIN] and [DONE], else all.

    A fence that is never closed (the response ran out) still yields its content.
    """
    fenced = _FENCE.search(completion)
    if fenced:
        return fenced.group(1)
    if "[BEGIN]" in completion:
        completion = completion.split("[BEGIN]", 1)[1]
    if "[DONE]" in completion:
        completion = completion.split("[DONE]", 1)[0]
    return completion.strip("\n")


@dataclass
class TestRun:
    """The outcome of one program's tests."""

    passed: bool
    status: str  # "passed", "failed", "timeout", "no-nonce" (exited 0 before the end), "error"
    detail: str  # the last lines of stderr, for failure reports


class CodeRunner:
    """Runs ``code + tests`` programs in a shared :class:`~bgpo.sandbox.Sandbox`, in parallel."""

    def __init__(self, limits: SandboxLimits | None = None, backend: str = "auto", workers: int | None = None) -> None:
        self.limits = limits or SandboxLimits(wall_time=10.0, cpu_time=10)
        self.backend = backend
        self.workers = workers
        self._sandbox: Sandbox | None = None

    @property
    def sandbox(self) -> Sandbox:
        """The sandbox, created on first use (probing for bubblewrap takes a moment)."""
        if self._sandbox is None:
            self._sandbox = Sandbox(self.limits, backend=self.backend)
        return self._sandbox

    def run(self, codes: Sequence[str], tests: Sequence[str]) -> list[TestRun]:
        """Run each ``code`` followed by its ``tests`` (Python source); results in input order.

        Identical (code, tests) pairs run once: a group of rollouts often repeats a completion, and a small
        policy repeats most of them, so this saves most of the sandbox time of a code reward.
        """
        nonce = secrets.token_hex(16)
        pairs = list(zip(codes, tests, strict=True))
        slot: dict[tuple[str, str], int] = {}
        for pair in pairs:
            slot.setdefault(pair, len(slot))
        programs = [f"{code}\n\n{test}\n\nprint({nonce!r})\n" for code, test in slot]
        unique: list[TestRun | None] = [_syntax_error(program) for program in programs]
        runnable = [i for i, outcome in enumerate(unique) if outcome is None]
        results = self.sandbox.run_many([programs[i] for i in runnable], workers=self.workers)
        for i, result in zip(runnable, results, strict=True):
            unique[i] = self._outcome(result, nonce)
        return [unique[slot[pair]] for pair in pairs]  # type: ignore[misc]

    @staticmethod
    def _outcome(result: RunResult, nonce: str) -> TestRun:
        """Classify one sandbox result."""
        tail = "\n".join(result.stderr.strip().splitlines()[-3:])
        if result.error:
            return TestRun(False, "error", result.error)
        if result.timed_out:
            return TestRun(False, "timeout", tail)
        if result.returncode != 0:
            return TestRun(False, "failed", tail)
        if nonce not in result.stdout:
            return TestRun(False, "no-nonce", "exited before the tests finished")
        return TestRun(True, "passed", "")


def _syntax_error(program: str) -> TestRun | None:
    """A failed run for a program that does not compile, else None.

    Compiling executes nothing (the compiler's constant folding is size-bounded), so a program that cannot
    pass is answered without starting a sandbox: a small policy writes many of them.
    """
    try:
        compile(program, "<program>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, MemoryError, RecursionError, OverflowError) as exc:
        return TestRun(False, "failed", f"{type(exc).__name__}: {exc}")
    return None
