"""Gradient diagnostics (Fig. 3 left/middle) and method variants."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from bgpo.advantages import group_advantages
from bgpo.cli import main
from bgpo.config import ConfigError
from bgpo.diagnostics import (
    _draws,
    _interval,
    _resample_counts,
    _statistics,
    diagnostic_batches,
    gradient_diagnostics,
    log_log_slope,
)
from bgpo.testing import random_batch
from bgpo.variants import load_variant


def test_std_falls_with_n_t_and_bgpo_equals_vrpo_ol(model, gen):
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    batch = random_batch(model, num_responses=8, generator=gen, advantages=group_advantages(rewards, 4).double())
    frame = gradient_diagnostics(
        model, batch, ["bgpo", "vrpo_ol", "diffu_grpo"], [1, 8], repeats=4, golden_n_t=32, seed=0
    )
    assert list(frame.columns) == ["method", "n_t", "repeats", "golden_n_t", "metric", "value", "low", "high"]
    value = frame.set_index(["method", "n_t", "metric"]).value
    assert value["bgpo", 8, "std"] < 0.6 * value["bgpo", 1, "std"]  # ≈ 1/√8 for an unbiased MC mean
    assert value["bgpo", 8, "bias"] < value["bgpo", 1, "bias"]
    for metric in ("std", "bias", "cosine"):
        assert value["bgpo", 8, metric] == pytest.approx(value["vrpo_ol", 8, metric], rel=1e-8)
    assert list(frame[frame.method == "diffu_grpo"].n_t.unique()) == [1]  # one pass: no n_t to vary
    assert (frame.value >= -1).all()
    bands = frame[frame.metric != "golden_std"]
    assert (bands.low <= bands.value + 1e-15).all() and (bands.value <= bands.high + 1e-15).all()


def test_diagnose_command_writes_csv_and_plot(tmp_path, capsys):
    out, plot = tmp_path / "d.csv", tmp_path / "d.png"
    args = ["diagnose", "--methods", "bgpo", "diffu_grpo", "--n-t", "1", "2", "--repeats", "2",
            "--golden-n-t", "8", "--responses", "4", "--group-size", "2", "--length", "6",
            "--out", str(out), "--plot", str(plot)]  # fmt: skip
    assert main(args) == 0
    assert out.stat().st_size > 0 and plot.stat().st_size > 0
    assert "bias_corrected" in capsys.readouterr().out
    assert list(pd.read_csv(out).columns) == [
        "method",
        "n_t",
        "repeats",
        "golden_n_t",
        "metric",
        "value",
        "low",
        "high",
    ]


def test_diagnose_sweeps_prompt_length_and_prompt_mask_ratio(tmp_path, capsys):
    out, plot = tmp_path / "s.csv", tmp_path / "s.png"
    args = ["diagnose", "--methods", "bgpo", "diffu_grpo", "--n-t", "1", "2", "4", "--repeats", "3",
            "--golden-n-t", "4", "--responses", "4", "--group-size", "2", "--length", "4",
            "--prompt-length", "2", "5", "--p-mask-prompt", "0.0", "0.5",
            "--out", str(out), "--plot", str(plot)]  # fmt: skip
    assert main(args) == 0
    frame = pd.read_csv(out)
    std = frame[frame.metric == "std"]
    # bgpo once per prompt length (no prompt noise), diffu-GRPO once per prompt length and mask ratio.
    assert sorted(std[std.method == "diffu_grpo"][["prompt_length", "p_mask_prompt"]].itertuples(index=False)) == [
        (2, 0.0), (2, 0.5), (5, 0.0), (5, 0.5)]  # fmt: skip
    assert len(std[std.method == "bgpo"]) == 6 and std[std.method == "bgpo"].p_mask_prompt.isna().all()
    # With no prompt noise the one-pass estimate is deterministic: its gradient never varies (up to the last
    # bits of a threaded reduction, ~1e-26 seen in CI; BGPO's std is ~1e-3).
    noiseless = std[(std.method == "diffu_grpo") & (std.p_mask_prompt == 0.0)].value.max()
    assert noiseless < 1e-9 * std[std.method == "bgpo"].value.min()
    assert len(frame[frame.metric == "std_slope"]) == 2  # bgpo's slope at each prompt length
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert "log-log slope" in capsys.readouterr().out


def test_diagnostic_batches_differ_in_their_prompts_only(model):
    short, long = diagnostic_batches(model, [3, 7], responses=4, group_size=2, length=5, seed=3)
    # Exact by construction: the same tensors sliced.
    assert torch.equal(short.response_ids, long.response_ids) and torch.equal(short.advantages, long.advantages)
    assert torch.equal(long.prompt_ids[:, -3:], short.prompt_ids) and short.prompt_mask.all() and long.prompt_mask.all()


def test_gram_statistics_equal_the_direct_computation():
    gen = torch.Generator().manual_seed(0)
    grads = torch.randn(6, 40, generator=gen, dtype=torch.float64) + 0.5
    golden = torch.randn(40, generator=gen, dtype=torch.float64)
    draws = _draws(grads, golden)
    counts = np.array([[1.0] * 6, [2, 0, 1, 0, 3, 0]])
    got = _statistics(draws, counts, golden_var=0.0)
    for row, c in enumerate(counts):
        sample = grads.repeat_interleave(torch.tensor(c, dtype=torch.long), dim=0)  # the resample itself
        mean = sample.mean(0)
        want = {
            "std": sample.var(0, unbiased=True).mean().sqrt().item(),
            "bias": (mean - golden).pow(2).mean().sqrt().item(),
            "cosine": torch.nn.functional.cosine_similarity(mean, golden, dim=0).item(),
            "mean_rms": mean.pow(2).mean().sqrt().item(),
        }
        for metric, value in want.items():
            assert got[metric][row] == pytest.approx(value, rel=1e-10), (row, metric)


def test_log_log_slope_of_a_power_law():
    n_t = [1, 2, 4, 8, 16]
    assert log_log_slope(n_t, 3.0 * np.array(n_t, dtype=float) ** -0.5) == pytest.approx(-0.5, abs=1e-12)


def test_intervals_cover_the_truth_for_gaussian_draws():
    """K = 32 Gaussian gradients in D = 30 coordinates, std 1, mean 0.3 off the (exact) golden gradient, per
    coordinate: the 95% intervals of std and of the noise-free bias must cover 1 and 0.3 about 95% of the time."""
    rng = np.random.default_rng(0)
    hits = {"std": 0, "bias_corrected": 0}
    trials = 200
    for _ in range(trials):
        grads = torch.from_numpy(rng.normal(1.3, 1.0, size=(32, 30)))
        draws = _draws(grads, torch.ones(30, dtype=torch.float64))
        boot = _statistics(draws, _resample_counts(32, 500, rng), golden_var=0.0, resampled=True)
        for metric, truth in (("std", 1.0), ("bias_corrected", 0.3)):
            low, high = _interval(boot[metric])
            hits[metric] += low <= truth <= high
    for metric, count in hits.items():
        assert 0.88 <= count / trials <= 0.99, (metric, count)  # binomial std of the coverage ≈ 0.015


def test_variants_select_table_3_ablations_by_name():
    assert load_variant("bgpo_lemma1").build().config.bound == "lemma1"
    assert load_variant("bgpo_lemma2").build().config.bound == "lemma2"
    assert load_variant("bgpo_offpolicy").train == {"mini_batches": 2}


def test_unknown_variant_and_bad_variant_files_say_what_to_change(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown method variant 'bgpo_lema1'.*did you mean 'bgpo_lemma1'"):
        load_variant("bgpo_lema1")
    (tmp_path / "bad.yaml").write_text("method: bgpo\nconfg: {}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'confg' in .*bad.yaml.*did you mean 'config'"):
        load_variant("bad", tmp_path)
    (tmp_path / "bad2.yaml").write_text("method: bgpo\nconfig: {n_t: 0}\n")
    with pytest.raises(ConfigError, match=r"bad2.yaml: method \(bgpo\): n_t must be an integer ≥ 1"):
        load_variant("bad2", tmp_path)
