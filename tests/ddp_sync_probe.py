"""Run under ``torchrun --nproc_per_node 2``: how often does DDP all-reduce during one optimiser step?

Each process accumulates BGPO's loss chunks (n_t = 4 samples × 2 micro-batches = 8 chunks) through the shared
driver with ``no_sync``; a communication hook counts the all-reduces. Prints one JSON line per process.
"""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist
from accelerate import Accelerator, DistributedDataParallelKwargs

from bgpo.distributed import shutdown
from bgpo.methods import accumulate_gradients, build_method
from bgpo.seeding import generators
from bgpo.testing import random_batch, toy_model


def main() -> None:
    acc = Accelerator(cpu=True, kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)])
    model = toy_model("nano", num_hidden_layers=1)
    ddp = acc.prepare(model)
    calls = {"n": 0}

    def counting_hook(state, bucket):
        calls["n"] += 1
        tensor = bucket.buffer().div_(dist.get_world_size())
        return dist.all_reduce(tensor, async_op=True).get_future().then(lambda fut: fut.value()[0])

    ddp.register_comm_hook(None, counting_hook)
    batch = random_batch(model, num_responses=4, generator=torch.Generator().manual_seed(acc.process_index))
    method = build_method("bgpo", {"n_t": 4})
    state = method.prepare(ddp, batch, generators(("probe",), range(4)), on_policy=True)
    stats = accumulate_gradients(
        method, ddp, batch, state, micro_batch_size=2, backward=acc.backward, no_sync=lambda: acc.no_sync(ddp)
    )
    grad = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    record = json.dumps({"rank": acc.process_index, "chunks": stats.chunks, "allreduce_calls": calls["n"],
                         "grad_sum": grad.sum().item()})  # fmt: skip
    # One write of the line and its newline: both ranks share stdout, and a print's two writes can interleave.
    os.write(sys.stdout.fileno(), (record + "\n").encode())
    shutdown()


if __name__ == "__main__":
    main()
