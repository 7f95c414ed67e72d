"""Sequence-level RL objectives on MC likelihood estimates: the ELBO-based objective and BGPO's bound.

For response y with advantage A and n_t MC samples on shared masks, d_j = ℓ_θ(y_t(j)) − ℓ_old(y_t(j)).

* ELBO-based objective (SPEC §1): R̂ = exp(B̂_θ − B̂_old) · A = exp(mean_j d_j) · A. Non-linear in the
  samples: its gradient needs all n_t graphs at once.
* BGPO (SPEC §2; Eq. 13, 14 and 19 of the paper): R̂_lb = Σ_j g_j with
    g_j = (1 + d_j) · A / n_t   if A ≥ 0   (Lemma 1: e^δ ≥ 1 + δ, the tangent at 0)
    g_j = e^{d_j} · A / n_t     if A < 0   (Lemma 2: Jensen, exp(mean d) ≤ mean exp(d), flipped by A < 0)
  Each g_j depends on one MC sample, so gradients accumulate one sample at a time.

Properties, all tested: R̂_lb ≤ R̂ for every θ; on-policy (d = 0) R̂_lb = R̂ = A and their gradients are
equal. The bound never takes log(1 + d), so it is finite and differentiable for d ≤ −1 too (the peer
code's PPO-style ratio log(1 + d) is not used; on-policy clipping has no effect, SPEC §2). The exponential
is evaluated only where it is used, so an overflow in the branch that ``torch.where`` discards cannot turn
into a NaN gradient.

No finite input overflows. Where A < 0 a large d would overflow e^d (float32: d > 88.7) and turn the loss into
−inf and the gradient into NaN, so above a bound C the exponential is continued by e^C·(1 + log(1 + d − C)):
the same value and slope at C, finite for every finite d, still increasing (the gradient keeps pushing d
down). C leaves a factor 10¹² of headroom below the dtype's largest number for the advantage, the sum over
responses and backward: d ≤ 61.1 in float32 and bf16, d ≤ 682 in float64 are computed exactly as e^d, bit
for bit. d is the change of a (per-token) log-likelihood between θ_old and θ within one rollout batch; a
ratio of e^61 between them is far past any run that still trains, so no realistic value changes. Half-
precision d is computed in float32, as the ELBO terms themselves are.

The Table 3 ablations use one lemma for both signs of A: ``"lemma1"`` (an upper bound where A < 0) and
``"lemma2"`` (an upper bound where A > 0); only ``"both"`` is a lower bound everywhere.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .config import require_choice

BOUNDS = ("both", "lemma1", "lemma2")
# log(10¹²): how far below the largest finite number e^C stays (see the module docstring).
EXP_HEADROOM = 12 * math.log(10)


def exp_bound(dtype: torch.dtype) -> float:
    """C of :func:`bounded_exp` for ``dtype``: e^d is exact for d ≤ C (61.1 in float32, 682 in float64)."""
    return math.log(torch.finfo(dtype).max) - EXP_HEADROOM


def bounded_exp(d: Tensor) -> Tensor:
    """e^d for d ≤ C, e^C·(1 + log(1 + d − C)) above: finite, increasing and C¹ for every finite d.

    For d ≤ C the value is exactly ``torch.exp(d)`` and so is the gradient; like ``torch.exp`` it saves only its
    output for backward (the same memory), from which the slope is recovered in both pieces.
    """
    if d.dtype in (torch.float16, torch.bfloat16):
        d = d.float()
    return _BoundedExp.apply(d)


class _BoundedExp(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, d: Tensor) -> Tensor:
        bound = exp_bound(d.dtype)
        top = math.exp(bound)  # e^C
        # Both pieces see clamped inputs, so the unused one is never inf or NaN.
        y = torch.where(d > bound, top * (1.0 + torch.log1p((d - bound).clamp(min=0.0))), torch.exp(d.clamp(max=bound)))
        ctx.save_for_backward(y)
        ctx.top = top  # type: ignore[attr-defined]
        return y

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors  # type: ignore[attr-defined]
        top = ctx.top  # type: ignore[attr-defined]
        # Below C the slope is y itself (as torch.exp's backward); above, e^C / (1 + d − C) = e^C · e^(1 − y/e^C).
        return grad * torch.where(y > top, top * torch.exp(1.0 - y / top), y)


def bgpo_terms(ell: Tensor, ell_old: Tensor, advantages: Tensor, n_t: int, bound: str = "both") -> Tensor:
    """BGPO's per-sample terms g_j (Eq. 13, 14, 19 of BGPO).

    Args:
        ell: (..., N) ℓ_θ of one or more MC samples (differentiable).
        ell_old: (..., N) ℓ_old on the same masks (no gradient needed).
        advantages: (N,) advantages A.
        n_t: the total MC sample size of the estimate (the 1/n_t weight), not the number of samples here.
        bound: ``"both"`` (BGPO), ``"lemma1"`` or ``"lemma2"`` (Table 3 ablations).

    Returns:
        (..., N) g_j; summing over all n_t samples gives R̂_lb.
    """
    require_choice(bound, BOUNDS, "method.bound")
    if n_t < 1:
        raise ValueError(f"n_t must be ≥ 1, got {n_t}; set method.n_t")
    if ell.shape != ell_old.shape:
        raise ValueError(f"ell {tuple(ell.shape)} and ell_old {tuple(ell_old.shape)} must have the same shape")
    if ell.shape[-1:] != advantages.shape:
        raise ValueError(
            f"advantages {tuple(advantages.shape)} must match the last dimension of ell {tuple(ell.shape)}"
        )
    d = ell - ell_old.detach()
    a = advantages.to(d.dtype)
    if bound == "both":
        linear = (a >= 0).expand_as(d)
    else:
        linear = torch.full_like(d, bound == "lemma1", dtype=torch.bool)
    # Each branch sees d only where it is used (see the module docstring on NaN gradients).
    tangent = 1.0 + torch.where(linear, d, 0.0)
    jensen = bounded_exp(torch.where(linear, 0.0, d))
    return torch.where(linear, tangent, jensen) * a / n_t


def bgpo_bound(ell: Tensor, ell_old: Tensor, advantages: Tensor, bound: str = "both") -> Tensor:
    """R̂_lb = Σ_j g_j for all n_t samples at once.

    Args:
        ell: (n_t, N) ℓ_θ of every sample.
        ell_old: (n_t, N) ℓ_old on the same masks.
        advantages: (N,).
        bound: as in :func:`bgpo_terms`.

    Returns:
        (N,) the bound per response.
    """
    return bgpo_terms(ell, ell_old, advantages, ell.shape[0], bound).sum(0)


def elbo_objective(ell: Tensor, ell_old: Tensor, advantages: Tensor) -> Tensor:
    """The ELBO-based objective R̂ = exp(B̂_θ − B̂_old) · A (SPEC §1), the quantity BGPO bounds.

    Args:
        ell: (n_t, N) ℓ_θ of every MC sample (all graphs alive).
        ell_old: (n_t, N) ℓ_old on the same masks.
        advantages: (N,).

    Returns:
        (N,) R̂ per response.
    """
    if ell.shape != ell_old.shape or ell.dim() != 2:
        raise ValueError(f"ell and ell_old must both be (n_t, N), got {tuple(ell.shape)} and {tuple(ell_old.shape)}")
    if ell.shape[1:] != advantages.shape:
        raise ValueError(f"advantages {tuple(advantages.shape)} must have one entry per response ({ell.shape[1]})")
    log_ratio = (ell - ell_old.detach()).mean(0)  # B̂_θ − B̂_old
    return torch.exp(log_ratio) * advantages.to(ell.dtype)
