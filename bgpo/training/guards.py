"""Finite-value guards: a diverging run (too large a learning rate, a grader returning NaN) must not train on
NaN silently.

Each step checks the rewards of its rollout and, before each optimiser step, the mini-batch's loss and the
gradient norm (which clipping has already computed: the check costs one comparison, and across processes one
tiny gather so that all of them decide alike); after each optimiser step, that the parameters are finite (one
pass over the weights). On a non-finite value the run either stops, with a message
naming the step, the quantity and the last good checkpoint, or (``train.on_nonfinite: skip``) drops the
update: no optimiser or schedule step, and the step's log record counts it in ``nonfinite_skipped``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import RunError
from .runtime import Runtime


class NonFiniteError(RunError):
    """A loss, gradient norm or reward was NaN or infinite and the run stopped (``train.on_nonfinite: stop``)."""


class FiniteGuard:
    """Checks the quantities a step trains on.

    Args:
        action: ``"stop"`` or ``"skip"`` (``train.on_nonfinite``).
        runtime: the process group, so that every process takes the same decision.
        last_checkpoint: returns the newest checkpoint the run can resume from (named in the message).
    """

    def __init__(self, action: str, runtime: Runtime, last_checkpoint: Callable[[], Path | None]) -> None:
        self.action = action
        self.runtime = runtime
        self.last_checkpoint = last_checkpoint

    def rewards(self, step: int, rewards: torch.Tensor, tasks: list[str]) -> bool:
        """True if every reward of ``step`` (1-based, as logged) is finite, on every process.

        Args:
            step: the step being run.
            rewards: (n,) this process's rewards.
            tasks: the task of each reward (named in the message).
        """
        bad = ~torch.isfinite(rewards)
        if not self.runtime.any(bool(bad.any())):
            return True
        count = int(bad.sum())
        if count:
            where = ", ".join(sorted({tasks[i] for i in bad.nonzero().flatten().tolist()}))
            what = f"{count} of {rewards.numel()} rewards are not finite (task {where})"
        else:
            what = "rewards on another process are not finite"
        return self._fail(step, what, "the task's grader")

    def update(self, step: int, minibatch: int, loss: float, grad_norm: float) -> bool:
        """True if the loss and gradient norm of a mini-batch of ``step`` are finite, on every process."""
        ok = math.isfinite(loss) and math.isfinite(grad_norm)
        if not self.runtime.any(not ok):
            return True
        if not math.isfinite(loss):
            quantity = f"the loss is {loss}"
        elif not math.isfinite(grad_norm):
            quantity = f"the gradient norm is {grad_norm} (the loss is {loss})"
        else:
            quantity = "the loss or gradient norm on another process is not finite"
        return self._fail(step, f"{quantity} in mini-batch {minibatch + 1}", "too large a train.learning_rate")

    def parameters(self, step: int, minibatch: int, params: list[torch.Tensor]) -> None:
        """Stop if an optimiser step left a parameter NaN or infinite (on any process).

        A finite loss and gradient can still give non-finite weights (an overflowing learning rate or
        optimiser state); every later rollout would then be garbage that earns reward 0, so advantages are 0
        and no loss or gradient ever shows it. This stops the run whatever ``on_nonfinite`` says: the step
        cannot be undone, and the last checkpoint is the good state.
        """
        # An FSDP2 parameter is a DTensor: each process checks its own shard.
        local = (p.to_local() if hasattr(p, "to_local") else p for p in params)
        bad = not all(bool(torch.isfinite(t).all()) for t in local)
        if not self.runtime.any(bad):
            return
        self._fail(
            step,
            f"the parameters are not finite after the optimiser step of mini-batch {minibatch + 1}",
            "too large a train.learning_rate (or a broken optimiser state)",
            skippable=False,
        )

    def _fail(self, step: int, what: str, cause: str, skippable: bool = True) -> bool:
        """Skip (return False) where ``on_nonfinite: skip`` allows it, else raise :class:`NonFiniteError`."""
        if skippable and self.action == "skip":
            return False
        checkpoint = self.last_checkpoint()
        resume = (
            f"the last good checkpoint is {checkpoint} (bgpo train ... --resume continues from it)"
            if checkpoint is not None
            else "there is no checkpoint yet (train.save_every)"
        )
        if not skippable:
            raise NonFiniteError(f"step {step}: {what}; stopped; {resume}. Likely cause: {cause}")
        raise NonFiniteError(
            f"step {step}: {what}; stopped before the optimiser step; {resume}. Likely cause: {cause}; set "
            "train.on_nonfinite=skip to skip such updates instead"
        )
