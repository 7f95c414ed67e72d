"""The memory instrument, and BGPO's memory claim: flat in n_t, unlike the all-graphs objective."""

from __future__ import annotations

import subprocess
import sys

import torch

from bgpo.diffusion import draw_masks, elbo_terms
from bgpo.memory import track_memory
from bgpo.methods import accumulate_gradients, build_method
from bgpo.objectives import elbo_objective
from bgpo.testing import random_batch


def test_counts_saved_tensors_until_backward_frees_them():
    w = torch.randn(64, 64, dtype=torch.float64, requires_grad=True)
    x = torch.randn(1000, 64, dtype=torch.float64)
    with track_memory(exclude=[w]) as report:
        y = (x @ w).sin()  # saves x (512 kB) for matmul and x @ w (512 kB) for sin
        y.sum().backward()
        del y
        z = (x @ w).sum()  # a second graph after the first was freed: the peak stays
        z.backward()
    assert report.peak_saved_bytes == 2 * 1000 * 64 * 8
    assert report.peak_rss_bytes > 0 and report.rss_scope in ("context", "process")
    assert report.cuda_peak_bytes is None or report.cuda_peak_bytes >= 0


def test_parameters_count_unless_excluded():
    w = torch.randn(256, 256, requires_grad=True)
    x = torch.randn(1, 256, requires_grad=True)
    with track_memory() as counted:
        (x @ w).sum().backward()
    with track_memory(exclude=[w]) as excluded:
        (x @ w).sum().backward()
    assert counted.peak_saved_bytes - excluded.peak_saved_bytes == 256 * 256 * 4


def _bgpo_peak(model, batch, n_t, gen):
    method = build_method("bgpo", {"n_t": n_t, "timesteps": "iid"})
    state = method.prepare(model, batch, gen, on_policy=True)
    with track_memory(exclude=model.parameters()) as report:
        accumulate_gradients(method, model, batch, state)
    return report.peak_saved_bytes


def _all_graphs_peak(model, batch, n_t, gen):
    draw = draw_masks(batch.counted(), n_t, "iid", gen)
    with track_memory(exclude=model.parameters()) as report:
        ell = elbo_terms(model, batch, draw.mask, draw.t, length_normalise=True)
        (-elbo_objective(ell, ell.detach(), batch.advantages).mean()).backward()
    return report.peak_saved_bytes


def test_bgpo_memory_is_flat_in_n_t_and_all_graphs_memory_is_not(model, gen):
    batch = random_batch(model, num_responses=8, prompt_length=6, response_length=16, generator=gen)
    bgpo = {n_t: _bgpo_peak(model, batch, n_t, gen) for n_t in (1, 16)}
    all_graphs = {n_t: _all_graphs_peak(model, batch, n_t, gen) for n_t in (1, 16)}
    assert abs(bgpo[16] / bgpo[1] - 1) < 0.05, bgpo
    assert all_graphs[16] >= 10 * all_graphs[1], all_graphs
    assert bgpo[1] > 0


def test_bench_chunks_memory_follows_k_and_targets_are_reported():
    """BGPO's saved bytes grow with k (samples per pass), are flat in n_t at k = 1, and equal VRPO-OL's at
    k = n_t of VRPO-OL; the speed targets come back as ratios (their values are for benchmarks, not tests)."""
    from bgpo.bench import bench_chunks

    frame, targets = bench_chunks(
        n_t=4, chunks=(1, 2, 4), rounds=1, responses=2, prompt_length=4, length=8, block_length=8
    )
    saved = {(r.method, r.n_t, r.samples_per_chunk): r.peak_saved_bytes for r in frame.itertuples()}
    assert saved[("bgpo", 4, 1)] < 1.05 * saved[("bgpo", 1, 1)]
    assert saved[("bgpo", 4, 2)] > 1.8 * saved[("bgpo", 4, 1)]
    assert abs(saved[("bgpo", 4, 4)] / saved[("vrpo_ol", 4, 4)] - 1) < 0.01
    assert len(targets) == 3 and targets["value"].gt(0).all() and "met" in targets


def test_a_memory_points_rss_covers_the_whole_step_optimiser_states_included():
    """`bench memory`'s RSS peak is over the step up to the optimiser step: AdamW's two states per parameter
    (8 bytes each, ~48 MiB for the small preset's ~6.3M parameters) are in it. Fresh processes: RSS is per process."""
    code = (
        "import sys; from bgpo.bench import memory_point; "
        "r = memory_point(method='bgpo', n_t=1, preset='small', responses=4, prompt_length=8, length=8, "
        "block_length=8, optimizer=sys.argv[1]); print(r['peak_rss_bytes'], r['rss_scope'])"
    )
    peaks = {}
    for optimizer in ("adamw", "none"):
        out = subprocess.run([sys.executable, "-c", code, optimizer], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        peaks[optimizer] = int(out.stdout.split()[-2])  # the step's window, or the process's lifetime peak
    assert peaks["adamw"] - peaks["none"] > 30 * 2**20
