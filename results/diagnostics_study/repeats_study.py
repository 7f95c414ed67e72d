"""How many repeats Fig. 3 needs: draw many gradients per n_t once, then subsample K of them many times.

Run from the repository root after building the countdown base (`snakemake -j2
work/default/models/base/countdown/sft_summary.json`); about 10 minutes on one CPU core:

    OMP_NUM_THREADS=1 .venv/bin/python results/diagnostics_study/repeats_study.py

Only the K × K Gram matrix of each n_t's gradients is kept: the std of any subset follows from it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bgpo.diagnostics import _generator, diagnostic_batches, flat_gradient, log_log_slope
from bgpo.models import load_model
from bgpo.variants import load_variant

DRAWS = {1: 640, 2: 400, 4: 256, 8: 160, 16: 160}  # the gradients drawn per n_t (seeds as bgpo diagnose's)
SUBSAMPLES = 4000


def std_of(gram: np.ndarray, index: np.ndarray, dim: int) -> float:
    sub = gram[np.ix_(index, index)]
    return math.sqrt((np.trace(sub) - sub.sum() / len(index)) / ((len(index) - 1) * dim))


def main() -> None:
    torch.manual_seed(0)
    model = load_model("work/default/models/base/countdown", dtype=torch.float64, device="cpu")
    [batch] = diagnostic_batches(model, [8], responses=16, group_size=8, length=16, seed=0)
    grams, dim = {}, 0
    for n_t, k in DRAWS.items():
        method = load_variant("bgpo").build({"n_t": n_t})
        grads = torch.stack(
            [flat_gradient(method, model, batch, _generator(batch, 1000 * i + n_t), 64) for i in range(k)]
        )
        grams[n_t], dim = (grads @ grads.T).numpy(), grads.shape[1]
    n_ts = list(DRAWS)
    print("std from all draws:", {n: f"{std_of(g, np.arange(len(g)), dim):.4e}" for n, g in grams.items()})
    rng = np.random.default_rng(1)
    for name, alloc in [(f"equal {k}", dict.fromkeys(n_ts, k)) for k in (8, 32, 64)] + [
        (f"sqrt {k}", {n: math.ceil(k * math.sqrt(16 / n)) for n in n_ts}) for k in (16, 32)
    ]:
        stds = np.array(
            [
                [std_of(grams[n], rng.choice(DRAWS[n], alloc[n], replace=False), dim) for n in n_ts]
                for _ in range(SUBSAMPLES)
            ]
        )
        monotone = np.mean(np.all(np.diff(stds, axis=1) < 0, axis=1))
        slopes = log_log_slope(n_ts, stds)
        cost = sum(n * k for n, k in alloc.items())
        print(f"{name}: {alloc} cost {cost} sample passes, P(monotone) {monotone:.3f}, "
              f"slope 2.5/50/97.5% {np.percentile(slopes, [2.5, 50, 97.5]).round(3)}")  # fmt: skip


if __name__ == "__main__":
    main()
