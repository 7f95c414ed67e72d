"""Gradient diagnostics (BGPO Fig. 3 left/middle): standard deviation and bias of a method's gradient vs n_t.

For one fixed rollout batch, each method's loss gradient is computed K times with fresh Monte Carlo draws
(on-policy, so every method's expected gradient would be A·∇log π if its estimator were exact). Against a
"golden" gradient g* — the ELBO-based objective's gradient with n_t = 256 samples (computed with BGPO,
whose on-policy gradient equals it exactly, in chunks) — and with D the number of parameters:

* ``std`` = sqrt( (1/D) Σ_d Var_k[g_kd] ): the root-mean-square over coordinates of the per-coordinate
  standard deviation across the K draws (unbiased variance);
* ``bias`` = sqrt( (1/D) Σ_d (ḡ_d − g*_d)² ): the RMS distance between the mean of the K gradients and g*
  (the paper's reading; it still contains the noise of the mean, Var/K);
* ``bias_corrected`` = sqrt(max(0, bias² − std²/K − σ*²)): the bias with the noise of the mean and of the
  golden gradient removed; σ*² (reported as ``golden_std``²) is estimated from the golden gradient's two
  independent halves h1, h2 of n_t/2 samples each: g* = (h1 + h2)/2, σ*² = (1/D) Σ_d (h1_d − h2_d)²/4;
* ``cosine``: the cosine similarity of ḡ and g*;
* ``rel_std`` / ``rel_bias``: ``std`` and ``bias`` divided by the RMS of g*;
* ``mean_rms``: the RMS of ḡ, the method's own mean gradient (``std`` / ``mean_rms`` is its noise-to-signal ratio:
  methods whose gradients differ in size, as the one-pass estimate's and the ELBO's, compare by it);
* ``std_slope`` (one row per method with three or more n_t, ``n_t`` empty): the least-squares slope of
  log ``std`` against log n_t. An unbiased MC mean of n_t independent samples has std ∝ n_t^(−1/2), slope −0.5;
  BGPO's stratified timesteps can only make it steeper.

Every metric but ``golden_std`` comes with a 95% bootstrap interval (``low``, ``high``) over the K repeats: B
resamples of the K gradients with replacement (each n_t resampled independently for the slope), percentiles 2.5
and 97.5. A resample's mean carries its own draws' noise, which is taken out of ``bias`` and ``cosine``
(:func:`_statistics`). The intervals cover the noise of the K draws, not that of the golden gradient
(which ``bias_corrected`` removes on average).
All of it is computed from the K × K Gram matrix of the centred gradients, so a resample costs O(K²), not O(K·D).

Methods whose config has no ``n_t`` (diffu-GRPO, wd1: one pass) are measured once, at n_t = 1. The output is
tidy: one row per method × n_t × metric. :func:`diagnostics_sweep` repeats the measurement over prompt lengths and
prompt mask ratios (d1's p_mask_prompt), adding the columns ``prompt_length`` and ``p_mask_prompt``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .advantages import group_advantages
from .batch import RolloutBatch
from .config import require_choice
from .methods import Method, accumulate_gradients, build_method
from .variants import load_variant

COLUMNS = ["method", "n_t", "repeats", "golden_n_t", "metric", "value", "low", "high"]
ALLOCATIONS = ("equal", "sqrt")
LEVEL = 0.95  # the confidence level of every interval


def flat_gradient(
    method: Method, policy: torch.nn.Module, batch: RolloutBatch, generator: torch.Generator, micro_batch_size: int
) -> torch.Tensor:
    """The on-policy loss gradient of ``method`` on ``batch`` as one flat float64 vector."""
    policy.zero_grad(set_to_none=True)
    state = method.prepare(policy, batch, generator, on_policy=True, reference=policy)
    accumulate_gradients(method, policy, batch, state, micro_batch_size=micro_batch_size)
    grads = [
        (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).double()
        for p in policy.parameters()
        if p.requires_grad
    ]
    policy.zero_grad(set_to_none=True)
    return torch.cat(grads)


def golden_gradient(
    policy: torch.nn.Module, batch: RolloutBatch, n_t: int, seed: int, micro_batch_size: int
) -> tuple[torch.Tensor, float]:
    """The ELBO-based objective's gradient with ``n_t`` MC samples (via BGPO: equal on-policy).

    Returns:
        The gradient, the mean of two independent halves of n_t/2 samples, and the estimated per-coordinate
        variance of that mean, (1/D) Σ_d (h1_d − h2_d)²/4.
    """
    half = max(n_t // 2, 1)
    method = build_method("bgpo", {"n_t": half, "samples_per_chunk": min(half, 16)})
    h1, h2 = (flat_gradient(method, policy, batch, _generator(batch, seed + i), micro_batch_size) for i in (0, 1))
    return (h1 + h2) / 2, (h1 - h2).pow(2).mean().item() / 4


def _generator(batch: RolloutBatch, seed: int) -> torch.Generator:
    return torch.Generator(device=batch.prompt_ids.device).manual_seed(seed)


def _fields(method: Method) -> set[str]:
    return {f.name for f in dataclasses.fields(method.config)}


def _has_n_t(method: Method) -> bool:
    return "n_t" in _fields(method)


def diagnostic_batches(
    policy: torch.nn.Module,
    prompt_lengths: Sequence[int],
    *,
    responses: int = 16,
    group_size: int = 8,
    length: int = 16,
    seed: int = 0,
) -> list[RolloutBatch]:
    """Fixed batches of random tokens, one per prompt length, that differ in their prompts only.

    Rewards are 0 or 1 at random, advantages GRPO's; responses have ``length`` tokens; each prompt has P real
    tokens (no padding). Prompts are nested: the batch with prompt length P holds the last P tokens of the
    longest prompt, so a prompt-length sweep changes nothing but the context the prompt gives.
    """
    from .testing import random_tokens

    if not prompt_lengths or min(prompt_lengths) < 1:
        raise ValueError(f"prompt lengths must be ≥ 1, got {list(prompt_lengths)}; set --prompt-length")
    gen = torch.Generator().manual_seed(seed)
    rewards = torch.randint(0, 2, (responses,), generator=gen).double()
    advantages = group_advantages(rewards, group_size)
    response_ids = random_tokens(policy, (responses, length), gen)
    prompts = random_tokens(policy, (responses, max(prompt_lengths)), torch.Generator().manual_seed(seed + 1))
    batches = []
    for p in prompt_lengths:
        batch = RolloutBatch(
            prompt_ids=prompts[:, -p:],
            prompt_mask=torch.ones(responses, p, dtype=torch.bool),
            response_ids=response_ids,
            advantages=advantages,
            mask_token_id=policy.mask_token_id,
            rewards=rewards,
            group_size=group_size,
        )
        batches.append(batch)
    return batches


@dataclasses.dataclass
class _Draws:
    """What the bootstrap needs of K gradients g_k: all of it lives in K-sized quantities."""

    gram: np.ndarray  # (K, K) <x_k, x_l> with x_k = g_k − ḡ
    to_golden: np.ndarray  # (K,) <x_k, ḡ − g*>
    to_mean: np.ndarray  # (K,) <x_k, ḡ>
    offset2: float  # ||ḡ − g*||²
    mean2: float  # ||ḡ||²
    mean_dot_golden: float  # <ḡ, g*>
    golden2: float  # ||g*||²
    dim: int


def _draws(grads: torch.Tensor, golden: torch.Tensor) -> _Draws:
    mean = grads.mean(0)
    x = grads - mean
    offset = mean - golden
    return _Draws(
        gram=(x @ x.T).numpy(),
        to_golden=(x @ offset).numpy(),
        to_mean=(x @ mean).numpy(),
        offset2=offset.dot(offset).item(),
        mean2=mean.dot(mean).item(),
        mean_dot_golden=mean.dot(golden).item(),
        golden2=golden.dot(golden).item(),
        dim=grads.shape[1],
    )


def _statistics(d: _Draws, counts: np.ndarray, golden_var: float, resampled: bool = False) -> dict[str, np.ndarray]:
    """The metrics of resamples given by ``counts`` (R, K) (how often each draw is taken); all ones: the data.

    A resample's mean carries the noise of its own draws on top of the data's (which ||ḡ − g*|| already holds):
    ||x̄_c||², whose bootstrap mean std_c²·(K − 1)/K² per coordinate is what std_c²/K estimates. With
    ``resampled``, std_c²/K is subtracted from ``bias``² and from the norm behind ``cosine``, so their bootstrap
    values centre on the estimates instead of lying above (below, for cosine) them almost always; the resampled
    variance, (K − 1)/K of the data's on average, is scaled by K/(K − 1) for the same reason.
    """
    k = counts.shape[1]
    quad = np.einsum("rk,kl,rl->r", counts, d.gram, counts) / k**2  # ||x̄_c||², x̄_c the resample's mean of x
    spread = counts @ np.diag(d.gram) - k * quad  # Σ_k c_k ||x_k − x̄_c||²
    std2 = np.maximum(spread, 0.0) / ((k - 1) * d.dim)
    own_noise = std2 / k if resampled else 0.0  # per coordinate
    if resampled:
        std2 = std2 * k / (k - 1)  # a resample repeats draws: its variance is (K − 1)/K of the data's on average
    bias2 = np.maximum((d.offset2 + 2 * (counts @ d.to_golden) / k + quad) / d.dim - own_noise, 0.0)
    mean2 = np.maximum(d.mean2 + 2 * (counts @ d.to_mean) / k + quad - d.dim * own_noise, 1e-300)
    dot = d.mean_dot_golden + (counts @ (d.to_mean - d.to_golden)) / k  # <ḡ_c, g*>, g* = ḡ − (ḡ − g*)
    golden_rms = math.sqrt(d.golden2 / d.dim)
    return {
        "std": np.sqrt(std2),
        "bias": np.sqrt(bias2),
        "bias_corrected": np.sqrt(np.maximum(0.0, bias2 - std2 / k - golden_var)),
        "cosine": dot / np.sqrt(mean2 * d.golden2),
        "rel_std": np.sqrt(std2) / golden_rms,
        "rel_bias": np.sqrt(bias2) / golden_rms,
        "mean_rms": np.sqrt(mean2 / d.dim),
    }


def _resample_counts(k: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(R, K) multinomial counts: how often each of the K draws appears in each bootstrap resample."""
    picks = rng.integers(0, k, size=(resamples, k))
    counts = np.zeros((resamples, k))
    np.add.at(counts, (np.arange(resamples)[:, None], picks), 1.0)
    return counts


def _interval(samples: np.ndarray) -> tuple[float, float]:
    """The percentile interval at :data:`LEVEL` of bootstrap values (non-finite values dropped)."""
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return math.nan, math.nan
    tail = (1 - LEVEL) / 2
    low, high = np.quantile(samples, [tail, 1 - tail])
    return float(low), float(high)


def repeats_at(n_t: int, largest: int, repeats: int, allocation: str) -> int:
    """Gradients drawn at ``n_t``: K for ``equal``; ⌈K·√(largest / n_t)⌉ for ``sqrt``.

    A gradient at n_t costs n_t sample passes, and the small n_t are where the draws are heaviest-tailed (one
    sample of weight 1/t = L/m per response), so their std is the least certain. If every point's log std has
    about the same error for the same K, K ∝ n_t^(−1/2) is the allocation that minimises the error of the log-log
    slope per unit of compute (Neyman allocation with cost ∝ n_t). Measured on the default countdown base (640, 400,
    256, 160, 160 draws at n_t = 1, 2, 4, 8, 16, subsampled 4000 times): the std curve is monotone in 49% of the
    subsamples with equal K = 8 (the paper's), 86% with equal K = 32, 96% with equal K = 64 (1984 sample passes) and
    99% with ``sqrt`` and K = 32 (128, 91, 64, 46, 32 draws; 1446 sample passes).
    """
    if allocation == "equal":
        return repeats
    return math.ceil(repeats * math.sqrt(largest / n_t) - 1e-9)


def log_log_slope(n_ts: Sequence[int], values: np.ndarray) -> np.ndarray:
    """Least-squares slope of log(values) against log(n_t); ``values`` (..., len(n_ts)) gives (...)."""
    x = np.log(np.asarray(n_ts, dtype=float))
    x = x - x.mean()
    y = np.log(np.where(values > 0, values, np.nan))  # a resample of identical draws has std 0: no slope
    return (y - y.mean(-1, keepdims=True)) @ x / (x @ x)


def gradient_diagnostics(
    policy: torch.nn.Module,
    batch: RolloutBatch,
    variants: Sequence[str],
    n_ts: Sequence[int],
    *,
    repeats: int = 32,
    allocation: str = "sqrt",
    golden_n_t: int = 256,
    seed: int = 0,
    micro_batch_size: int = 64,
    bootstrap: int = 2000,
    overrides: Mapping[str, Any] | None = None,
    golden: tuple[torch.Tensor, float] | None = None,
) -> pd.DataFrame:
    """Measure std and bias of each variant's gradient for each n_t, with intervals (see the module docstring).

    Args:
        policy: the model (its parameters are not changed).
        batch: the fixed rollout batch.
        variants: method variant names (``configs/methods/``).
        n_ts: MC sample sizes to try.
        repeats: K, gradients per (method, n_t) at the largest n_t (the paper: 8, at every n_t).
        allocation: ``equal`` (K at every n_t) or ``sqrt`` (⌈K·√(max n_t / n_t)⌉ at n_t; see
            :func:`repeats_at`).
        golden_n_t: MC samples of the golden gradient (the paper: 256).
        seed: base seed; draw k of a setting uses its own generator, the bootstrap its own.
        micro_batch_size: responses per forward pass.
        bootstrap: B, resamples of the K gradients behind each interval.
        overrides: config values set on every variant whose config has the key (e.g. ``p_mask_prompt``).
        golden: a golden gradient computed before for this batch (:func:`golden_gradient`).

    Returns:
        A tidy frame with columns method, n_t, repeats, golden_n_t, metric, value, low, high.
    """
    if repeats < 2:
        raise ValueError(f"repeats must be ≥ 2 to estimate a standard deviation, got {repeats}; set --repeats")
    require_choice(allocation, ALLOCATIONS, "--allocation")
    if golden is None:
        golden = golden_gradient(policy, batch, golden_n_t, seed + 10_000_019, micro_batch_size)
    golden_grad, golden_var = golden
    rows = []

    def add(name: str, n_t: float, k: int, metric: str, value: float, low: float = math.nan, high: float = math.nan):
        rows.append(dict(zip(COLUMNS, [name, n_t, k, golden_n_t, metric, value, low, high], strict=True)))

    for index, name in enumerate(variants):
        variant = load_variant(name)
        fields = _fields(variant.build())
        settings = {k: v for k, v in (overrides or {}).items() if k in fields}
        sizes = n_ts if "n_t" in fields else [1]
        stds = []  # per n_t: (point estimate, B bootstrap values)
        for n_t in sizes:
            method = variant.build({**settings, **({"n_t": n_t} if "n_t" in fields else {})})
            k_n = repeats_at(n_t, max(n_ts), repeats, allocation)
            grads = torch.stack(
                [
                    flat_gradient(method, policy, batch, _generator(batch, seed + 1000 * k + n_t), micro_batch_size)
                    for k in range(k_n)
                ]
            )  # (K, D)
            draws = _draws(grads, golden_grad)
            point = _statistics(draws, np.ones((1, k_n)), golden_var)
            rng = np.random.default_rng([seed, index, n_t])
            counts = _resample_counts(k_n, bootstrap, rng)
            boot = _statistics(draws, counts, golden_var, resampled=True)
            for metric in point:
                value = float(point[metric][0])
                add(name, n_t, k_n, metric, value, *_interval(boot[metric]))
            add(name, n_t, k_n, "golden_std", math.sqrt(golden_var))
            stds.append((float(point["std"][0]), boot["std"]))
        if len(sizes) >= 3:
            slope = float(log_log_slope(sizes, np.array([s for s, _ in stds])))
            boot_slopes = log_log_slope(sizes, np.stack([b for _, b in stds], axis=-1))
            add(name, math.nan, repeats, "std_slope", slope, *_interval(boot_slopes))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["n_t"] = frame["n_t"].astype("Int64")  # whole numbers, empty on the slope rows
    return frame


def diagnostics_sweep(
    policy: torch.nn.Module,
    batches: Sequence[RolloutBatch],
    variants: Sequence[str],
    n_ts: Sequence[int],
    *,
    p_mask_prompts: Sequence[float] | None = None,
    repeats: int = 32,
    allocation: str = "sqrt",
    golden_n_t: int = 256,
    seed: int = 0,
    micro_batch_size: int = 64,
    bootstrap: int = 2000,
) -> pd.DataFrame:
    """:func:`gradient_diagnostics` per batch (prompt length) and per prompt mask ratio.

    Args:
        batches: one batch per prompt length (:func:`diagnostic_batches`).
        p_mask_prompts: values of ``p_mask_prompt`` for the variants that have it (d1's prompt noise: diffu-GRPO,
            wd1, SPG); ``None`` keeps each variant's own. Variants without it are measured once per batch.
        (the rest as :func:`gradient_diagnostics`)

    Returns:
        The tidy frame of :func:`gradient_diagnostics` with columns ``prompt_length`` (real prompt tokens of the
        batch) and ``p_mask_prompt`` (the value used; empty for variants without it).
    """
    frames = []
    noisy = [v for v in variants if "p_mask_prompt" in _fields(load_variant(v).build())]
    for batch in batches:
        golden = golden_gradient(policy, batch, golden_n_t, seed + 10_000_019, micro_batch_size)
        common = dict(repeats=repeats, allocation=allocation, golden_n_t=golden_n_t, seed=seed,
                      micro_batch_size=micro_batch_size, bootstrap=bootstrap, golden=golden)  # fmt: skip
        settings = [None] if p_mask_prompts is None else list(p_mask_prompts)
        for i, p in enumerate(settings):
            chosen = list(variants) if i == 0 else noisy
            if not chosen:
                break
            overrides = None if p is None else {"p_mask_prompt": p}
            frame = gradient_diagnostics(policy, batch, chosen, n_ts, overrides=overrides, **common)
            frame["prompt_length"] = int(batch.prompt_mask.sum(-1).max())
            own = {v: load_variant(v).build(overrides).config.p_mask_prompt if v in noisy else math.nan for v in chosen}
            frame["p_mask_prompt"] = frame["method"].map(own)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _label(method: str, frame: pd.DataFrame) -> str:
    slope = frame[(frame.method == method) & (frame.metric == "std_slope")]
    if slope.empty:
        return method
    row = slope.iloc[0]
    return f"{method} (std slope {row.value:.2f} [{row.low:.2f}, {row.high:.2f}])"


def plot_diagnostics(frame: pd.DataFrame, path: Path) -> None:
    """Fig. 3 left/middle: std and bias of the gradient vs n_t, one line per method (log-log), 95% bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric, title in zip(axes, ("std", "bias"), ("gradient std", "gradient bias vs golden"), strict=True):
        styles = iter([("o", "-"), ("s", "--"), ("^", ":"), ("D", "-."), ("v", "-")] * 4)
        for method, part in frame[frame.metric == metric].groupby("method"):
            part = part.sort_values("n_t")
            has_band = "low" in part and part["low"].notna().all()
            if len(part) == 1:
                line = ax.axhline(part.value.iloc[0], linestyle="--", label=f"{method} (one pass)", color="grey")
                if has_band:
                    ax.axhspan(part.low.iloc[0], part.high.iloc[0], color=line.get_color(), alpha=0.15)
            else:
                # Markers and line styles differ: on-policy BGPO and VRPO-OL coincide exactly.
                marker, style = next(styles)
                label = _label(method, frame) if metric == "std" else method
                (line,) = ax.plot(part.n_t, part.value, marker=marker, linestyle=style, label=label, fillstyle="none")
                if has_band:
                    ax.fill_between(part.n_t, part.low, part.high, color=line.get_color(), alpha=0.15)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("MC sample size n_t")
        ax.set_title(f"{title} (95% bootstrap bands)" if "low" in frame else title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)


def plot_sweep(frame: pd.DataFrame, path: Path, reference: str = "bgpo") -> None:
    """Gradient std of the prompt-noise methods vs p_mask_prompt, one panel per prompt length, with
    ``reference``'s std at each n_t as horizontal lines (95% bands throughout)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    std = frame[frame.metric == "std"]
    lengths = sorted(std.prompt_length.unique())
    fig, axes = plt.subplots(1, len(lengths), figsize=(3.4 * len(lengths), 3.4), sharey=True, squeeze=False)
    for ax, length in zip(axes[0], lengths, strict=True):
        part = std[std.prompt_length == length]
        for method, rows in part[part.p_mask_prompt.notna()].groupby("method"):
            rows = rows.sort_values("p_mask_prompt")
            (line,) = ax.plot(rows.p_mask_prompt, rows.value, marker="o", label=method)
            ax.fill_between(rows.p_mask_prompt, rows.low, rows.high, color=line.get_color(), alpha=0.15)
        for i, row in enumerate(part[part.method == reference].sort_values("n_t").itertuples()):
            ax.axhline(row.value, color="grey", linestyle=":", alpha=0.4 + 0.12 * i)
            ax.annotate(f"{reference} n_t={row.n_t:g}", (0.01, row.value), xycoords=("axes fraction", "data"),
                        fontsize=6, color="grey")  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlabel("prompt mask ratio p_mask_prompt")
        ax.set_title(f"prompt length {length}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("gradient std")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)
