"""This process's place in a (possibly distributed) run: what every training stage needs from accelerate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Runtime:
    """The accelerator and the facts derived from it.

    Attributes:
        accelerator: an ``accelerate.Accelerator``.
        world: the number of processes.
        rank: this process's index.
        lockstep: FSDP or DeepSpeed ZeRO-3: parameters are gathered inside every forward pass (a collective
            call), so all processes must run the same passes: inert rows are not skipped and evaluation is
            split evenly.
    """

    accelerator: Any
    world: int
    rank: int
    lockstep: bool

    @classmethod
    def create(cls, accelerator: Any = None) -> Runtime:
        """Wrap ``accelerator``, or create one (:func:`bgpo.distributed.make_accelerator`: CPU without CUDA, DDP
        without buffer broadcasts, FSDP on CPU when the launch config asks for it)."""
        from accelerate import DistributedType

        from ..distributed import make_accelerator

        acc = accelerator or make_accelerator()
        lockstep = acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
        return cls(acc, acc.num_processes, acc.process_index, lockstep)

    @property
    def device(self) -> torch.device:
        """This process's device."""
        return self.accelerator.device

    @property
    def is_main(self) -> bool:
        """True on the main process (it writes the run's files)."""
        return self.accelerator.is_main_process

    def wait(self) -> None:
        """Barrier: every process reaches this point before any goes on."""
        self.accelerator.wait_for_everyone()

    def any(self, flag: bool) -> bool:
        """True on every process if ``flag`` is true on any (one tiny gather; no communication on one process)."""
        if self.world == 1:
            return flag
        flags = self.accelerator.gather(torch.tensor([float(flag)], device=self.device))
        return bool(flags.max() > 0)

    def from_main(self, value: Any) -> Any:
        """The main process's ``value`` on every process (a decision taken once, e.g. which checkpoint to load)."""
        if self.world == 1:
            return value
        from accelerate.utils import broadcast_object_list

        box = [value]
        broadcast_object_list(box, from_process=0)
        return box[0]
