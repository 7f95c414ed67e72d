"""Steps 4–5 of an iteration (SPEC §2): the method's update on one step's rollouts.

4. each mini-batch is ``prepare``d at θ_old: the method's randomness (MC masks, prompt noise) and old-policy
   values on it, without gradients;
5. for each of the method's ``updates_per_batch`` passes and each mini-batch: backward on the method's loss
   chunks one by one (``accumulate_gradients``), clip the gradient norm, then (if the loss and the norm are
   finite, :mod:`bgpo.training.guards`) step AdamW and the schedule.

Only the rows whose loss can be non-zero run: for most methods a response with A = 0 needs neither old values
nor gradients. Each row has its own generator derived from (seed, "prepare", step, response index), so its
draws do not depend on which other rows run. Distributed: the loss is normalised by the local number of
responses and averaged across processes by the gradient all-reduce, once per optimiser step (every chunk but
the last runs under ``no_sync``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from ..batch import RolloutBatch
from ..memory import track_memory
from ..methods import Method, accumulate_gradients, active_rows
from ..run_config import TrainSettings
from ..seeding import generators
from .guards import FiniteGuard
from .rollout import Rollout
from .runtime import Runtime


class UpdateStage:
    """The optimiser side of a step: the method's loss, gradient accumulation and the optimiser steps.

    Args:
        method: the RL method (it turns a mini-batch into loss chunks).
        model: the prepared (possibly wrapped) policy θ.
        optimizer: AdamW over the trainable parameters.
        scheduler: the learning-rate schedule, stepped with the optimiser.
        reference: the frozen reference policy if the method needs one.
        settings: the ``train`` section.
        runtime: the process group.
        guard: the finite-value checks before each optimiser step.
    """

    def __init__(
        self,
        method: Method,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        reference: torch.nn.Module | None,
        settings: TrainSettings,
        runtime: Runtime,
        guard: FiniteGuard,
    ) -> None:
        self.method = method
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.reference = reference
        self.settings = settings
        self.runtime = runtime
        self.guard = guard

    def __call__(self, step: int, rollout: Rollout) -> dict[str, float]:
        """Prepare every mini-batch of step ``step`` (0-based) at θ_old, then the method's optimiser steps."""
        cfg, acc, method = self.settings, self.runtime.accelerator, self.method
        start = time.perf_counter()
        prepared = self._prepare(step, rollout)
        prepare_time = time.perf_counter() - start
        params = [p for p in self.model.parameters() if p.requires_grad]
        stats: dict[str, float] = {"prepare_time": prepare_time, "loss": 0.0, "grad_norm": 0.0, "chunks": 0}
        update_time = optimizer_time = 0.0
        optimizer_steps = skipped = 0
        with track_memory(exclude=params) as memory:
            for update in range(method.updates_per_batch):
                for m, (mb, item) in enumerate(zip(rollout.batches, prepared, strict=True)):
                    if item is None:
                        continue
                    rows, state = item
                    start = time.perf_counter()
                    result = accumulate_gradients(
                        method,
                        self.model,
                        mb.select(rows),
                        state,
                        normaliser=mb.num_responses,
                        micro_batch_size=cfg.micro_batch_size,
                        backward=acc.backward,
                        update=update,
                        no_sync=self._no_sync if self._defers_sync() else None,
                    )
                    update_time += time.perf_counter() - start
                    start = time.perf_counter()
                    # Read the parameters afresh: FSDP2 swaps the root's parameters between unsharded tensors
                    # (after a no-grad forward, e.g. prepare) and sharded DTensors (after backward).
                    trainable = [p for p in self.model.parameters() if p.requires_grad]
                    norm = float(acc.clip_grad_norm_(trainable, cfg.grad_clip))
                    if self.guard.update(step + 1, m, result.loss, norm):
                        self.optimizer.step()
                        self.guard.parameters(step + 1, m, trainable)
                        self.scheduler.step()
                        optimizer_steps += 1
                        stats["loss"] += result.loss
                        stats["grad_norm"] += norm
                        stats["chunks"] += result.chunks
                    else:  # train.on_nonfinite: skip — the optimiser and the schedule do not move
                        skipped += 1
                    self.optimizer.zero_grad(set_to_none=True)
                    optimizer_time += time.perf_counter() - start
        steps = max(optimizer_steps, 1)
        stats.update(
            loss=stats["loss"] / steps,
            grad_norm=stats["grad_norm"] / steps,
            optimizer_steps=optimizer_steps,
            update_time=update_time,
            optimizer_time=optimizer_time,
            peak_saved_bytes=memory.peak_saved_bytes,
            peak_rss_bytes=memory.peak_rss_bytes,
            lr=self.scheduler.get_last_lr()[0],
        )
        if memory.cuda_peak_bytes is not None:
            stats["cuda_peak_bytes"] = memory.cuda_peak_bytes
        if self.guard.action == "skip":
            stats["nonfinite_skipped"] = skipped
        return stats

    def skipped(self) -> dict[str, float]:
        """The statistics of a step whose update was skipped (its rewards were not finite)."""
        stats: dict[str, float] = {"prepare_time": 0.0, "loss": 0.0, "grad_norm": 0.0, "chunks": 0}
        stats.update(optimizer_steps=0, update_time=0.0, optimizer_time=0.0, peak_saved_bytes=0, peak_rss_bytes=0)
        stats["lr"] = self.scheduler.get_last_lr()[0]
        stats["nonfinite_skipped"] = 1
        return stats

    def _prepare(self, step: int, rollout: Rollout) -> list[tuple[torch.Tensor, dict[str, torch.Tensor]] | None]:
        """(rows, state) per mini-batch at θ_old; ``None`` where no process has a row to learn from."""
        cfg, method = self.settings, self.method
        on_policy = len(rollout.batches) == 1 and method.updates_per_batch == 1
        prepared: list[tuple[torch.Tensor, dict[str, torch.Tensor]] | None] = []
        for mb, ids in zip(rollout.batches, rollout.rows, strict=True):
            rows = self._rows_to_run(mb)
            if rows is None:  # no process has anything to learn from: no step at all
                prepared.append(None)
                continue
            whole = rows.numel() == mb.num_responses  # then pass the mini-batch itself, with its groups
            part = mb if whole else mb.select(rows)
            seeds = generators(
                (cfg.seed, "prepare", step), ids if whole else [ids[i] for i in rows.tolist()], self.runtime.device
            )
            state = method.prepare(self.model, part, seeds, on_policy=on_policy, reference=self.reference)
            prepared.append((rows, state))
        return prepared

    def _rows_to_run(self, batch: RolloutBatch) -> torch.Tensor | None:
        """Rows whose loss can be non-zero; ``None`` if no process has any (then no optimiser step).

        Under DDP every process must run a backward when any does, so a process without such rows runs one
        inert row (A = 0: zero loss and gradient) to take part in the all-reduce.
        """
        if self.runtime.lockstep:
            return torch.arange(batch.num_responses, device=batch.advantages.device)
        rows = active_rows(self.method, batch)
        if self.runtime.world == 1:
            return rows if rows.numel() else None
        counts = self.runtime.accelerator.gather(torch.tensor([rows.numel()], device=self.runtime.device))
        if int(counts.max()) == 0:
            return None
        return rows if rows.numel() else torch.arange(1, device=rows.device)

    def _defers_sync(self) -> bool:
        """Whether the chunks before a mini-batch's last must run under :meth:`_no_sync`: with several processes,
        and under DeepSpeed even with one (its engine steps the optimiser inside every backward it is not told
        to defer)."""
        return self.runtime.world > 1 or getattr(self.runtime.accelerator, "deepspeed_engine_wrapped", None) is not None

    @contextmanager
    def _no_sync(self) -> Iterator[None]:
        """Suspend gradient synchronisation (DDP, FSDP: accelerate's no_sync) and, under DeepSpeed, the engine's
        optimiser step: SPEC §2 takes one optimiser step after all chunks of a mini-batch.

        Under DeepSpeed both flags are held: accelerate ≥ 1.x sets the engine's accumulation boundary from its
        own ``sync_gradients`` in every backward and steps the engine when it is true (overwriting a boundary
        set on the engine alone); earlier versions step the engine in every backward, which the engine's own
        boundary turns into a no-op."""
        acc = self.runtime.accelerator
        engine = getattr(acc, "deepspeed_engine_wrapped", None)
        if engine is None:
            with acc.no_sync(self.model):
                yield
            return
        acc.gradient_state._set_sync_gradients(False)
        engine.engine.set_gradient_accumulation_boundary(False)
        try:
            yield
        finally:
            engine.engine.set_gradient_accumulation_boundary(True)
            acc.gradient_state._set_sync_gradients(True)
