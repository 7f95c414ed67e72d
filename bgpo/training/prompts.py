"""The training prompts: which prompts step s trains on, on which process.

Epoch e is a permutation of the training examples drawn from (seed, e); the prompts of step s are positions
[s·B, (s+1)·B) of the concatenated epochs, so the data position of a run is a function of its step and
nothing needs restoring on resume.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ..seeding import derive_seed
from ..tasks import Example, Task
from ..tasks.data import DataError


@dataclass
class Prompt:
    """A training prompt: its task, example and rendered text."""

    task: Task
    example: Example
    text: str


class PromptStream:
    """The training prompts in a fixed order: epoch e is a permutation drawn from (seed, e)."""

    def __init__(self, prompts: Sequence[Prompt], seed: int) -> None:
        if not prompts:
            raise ValueError("the training tasks have no examples")
        self.prompts = list(prompts)
        self.seed = seed
        self._orders: dict[int, list[int]] = {}

    def _order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            order = list(range(len(self.prompts)))
            random.Random(derive_seed(self.seed, "epoch", epoch)).shuffle(order)
            self._orders = {epoch: order}
        return self._orders[epoch]

    def batch(self, step: int, size: int) -> list[Prompt]:
        """The ``size`` prompts of ``step``."""
        out = []
        for position in range(step * size, (step + 1) * size):
            epoch, index = divmod(position, len(self.prompts))
            out.append(self.prompts[self._order(epoch)[index]])
        return out


def local_shares(
    stream: PromptStream, step: int, prompts_per_step: int, mini_batches: int, world: int, rank: int
) -> list[list[tuple[int, Prompt]]]:
    """This process's prompts of ``step``, per mini-batch, each with its index in the global batch.

    Each mini-batch is whole groups; each process takes a contiguous share of every mini-batch's prompts.
    """
    prompts = stream.batch(step, prompts_per_step)
    per_minibatch = prompts_per_step // mini_batches
    share = per_minibatch // world
    out = []
    for m in range(mini_batches):
        start = m * per_minibatch + rank * share
        out.append([(i, prompts[i]) for i in range(start, start + share)])
    return out


def load_split(task: Task, split: str) -> list[Example]:
    """The examples of ``task``'s ``split``; none at all (an empty file, every row filtered out, a size of 0)
    is a :class:`DataError` naming the task and, where it has one, its data file."""
    examples = task.load(split)
    if examples:
        return examples
    files = getattr(task, "files", None)  # the tasks that read local files keep their names per split here
    path = task.local_file(files[split]) if isinstance(files, dict) and split in files else None
    source = f" (read from {path}: every row was filtered out)" if path is not None else ""
    raise DataError(
        f"task {task.name}: the {split} split has no examples{source}; check the data file, data.data_dir and "
        f"data.task_options.{task.name}"
    )
