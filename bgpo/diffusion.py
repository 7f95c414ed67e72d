"""The masked-diffusion forward process and the per-sample likelihood terms built on it.

Forward process (SPEC §1): each response token is replaced by the mask token M with probability t; the
prompt is never masked. Two timestep schemes draw the masks for n_t Monte Carlo samples per response:

* ``"iid"``: t ~ U(0, 1] independently per sample, each counted response token masked with probability t;
  weight 1/t.
* ``"stratified"`` (SPEC §2, the authors' code): k ~ U{1..L}; mask counts m_j = k + round(j·L/n_t) wrapped
  into {1..L}; sample j masks m_j uniformly chosen response positions; t_j = m_j/L, so 1/t_j = L/m_j.
  The offsets round(j·L/n_t) are integers added to a uniform k, so every m_j is exactly uniform on
  {1..L}; rounding k + j·L/n_t as a whole (half-to-even) would bias the estimate when L/n_t has a half.

Both schemes give unbiased estimates of the ELBO B(y|x): conditioned on m masked tokens, E[1/t | m] = 1/m
under t ~ U(0,1), which is the stratified weight L/m times P(m) = 1/L.

All randomness comes from an explicit ``torch.Generator``. Masks are drawn once and stored, so the old
and the current policy are evaluated on exactly the same masked sequences (SPEC §2).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .batch import RolloutBatch
from .config import require_choice

TIMESTEP_SCHEMES = ("iid", "stratified")


@dataclass(frozen=True)
class MaskDraw:
    """Masks of n_t Monte Carlo samples for N responses.

    Attributes:
        mask: (n_t, N, L) bool, True where the response token is replaced by M.
        t: (n_t, N) float64 in (0, 1], the masking level whose inverse weights the sample.
    """

    mask: Tensor
    t: Tensor


Randomness = torch.Generator | Sequence[torch.Generator]


def _per_row(
    draw: Callable[[slice, torch.Generator], MaskDraw], n: int, generators: Sequence[torch.Generator]
) -> MaskDraw:
    """Draw row by row, row i from ``generators[i]``, and stack along the response dimension."""
    if len(generators) != n:
        raise ValueError(f"got {len(generators)} generators for {n} responses; pass one per response or a single one")
    parts = [draw(slice(i, i + 1), g) for i, g in enumerate(generators)]
    return MaskDraw(mask=torch.cat([p.mask for p in parts], dim=1), t=torch.cat([p.t for p in parts], dim=1))


def _check_n_t(n_t: int) -> None:
    if not isinstance(n_t, int) or isinstance(n_t, bool) or n_t < 1:
        raise ValueError(f"n_t (the Monte Carlo sample size) must be an integer ≥ 1, got {n_t!r}; set method.n_t")


def draw_masks(counted: Tensor, n_t: int, scheme: str, generator: Randomness) -> MaskDraw:
    """Draw the forward-process masks of ``n_t`` MC samples for each response.

    Args:
        counted: (N, L) bool, the response tokens that may be masked (all True in BGPO's setting).
        n_t: the MC sample size, ≥ 1.
        scheme: ``"iid"`` or ``"stratified"`` (see the module docstring).
        generator: the source of all randomness, on ``counted``'s device; or one generator per response, so
            that a response's masks do not depend on the batch it is in.

    Returns:
        A :class:`MaskDraw` with mask (n_t, N, L) and t (n_t, N).
    """
    _check_n_t(n_t)
    if not isinstance(generator, torch.Generator):
        return _per_row(lambda rows, g: draw_masks(counted[rows], n_t, scheme, g), counted.shape[0], generator)
    require_choice(scheme, TIMESTEP_SCHEMES, "method.timesteps")
    if counted.dim() != 2:
        raise ValueError(f"counted must be (N, L), got shape {tuple(counted.shape)}")
    counted = counted.bool()
    n, length = counted.shape
    lengths = counted.sum(-1)  # (N,)
    if bool((lengths == 0).any()):
        raise ValueError("every response needs at least one counted token (response_mask has an empty row)")
    device = counted.device
    if scheme == "iid":
        t = 1.0 - torch.rand(n_t, n, generator=generator, device=device, dtype=torch.float64)  # (n_t, N) in (0, 1]
        u = torch.rand(n_t, n, length, generator=generator, device=device, dtype=torch.float64)
        mask = (u < t[..., None]) & counted
        return MaskDraw(mask=mask, t=t)
    # Stratified mask counts. k ~ U{1..L_i} per response.
    k = (torch.rand(n, generator=generator, device=device, dtype=torch.float64) * lengths).floor().long() + 1
    k = torch.minimum(k, lengths)  # guards the measure-zero case rand == 1 - ε rounding up
    j = torch.arange(n_t, device=device, dtype=torch.float64)[:, None]  # (n_t, 1)
    offsets = torch.floor(j * lengths[None].double() / n_t + 0.5).long()  # (n_t, N), round half up
    counts = (k[None] - 1 + offsets) % lengths[None] + 1  # (n_t, N) in {1..L_i}
    # m uniformly chosen counted positions: the m smallest of i.i.d. uniform scores.
    scores = torch.rand(n_t, n, length, generator=generator, device=device)
    scores = scores.masked_fill(~counted, float("inf"))
    ranks = scores.argsort(-1).argsort(-1)
    mask = ranks < counts[..., None]
    t = counts.double() / lengths[None].double()
    return MaskDraw(mask=mask, t=t)


def draw_block_masks(
    completion: Tensor, n_t: int, block_length: int, p_noise: float, generator: Randomness
) -> MaskDraw:
    """Block-wise partial masks as SPG's release builds them (arXiv 2510.09541; facebookresearch/SPG,
    ``spg/spg_trainer.py``, ``forward_process`` with ``forward_type="block_random"``, ``min_t = 0``, ``max_t = 1``).

    It mimics semi-autoregressive decoding. The response's L positions are cut into B = ⌈L/b⌉ blocks of b
    positions; the completion (the tokens up to and including the first EOS, a prefix of length n) spans the
    first c = ⌈n/b⌉ of them. Per MC sample j:

    * the block is ``perm[j] mod c``, with ``perm`` a uniform permutation of {0..B−1} (so blocks repeat and are
      not uniform on {0..c−1} when c < B, as released); for n_t > B the release stops (``assert num_t <=
      num_blocks``), here further independent permutations are appended;
    * in the chosen block, k ~ U{1..s} of its s completion tokens are masked, uniformly chosen; **the rest of
      the chosen block stays clean** (the release's ``is_mask & is_mask_following``);
    * every later block is fully masked (not decoded yet);
    * every position of the earlier blocks is masked with probability ``p_noise`` (the release's
      ``~is_mask & (rand < p_mask_prompt)``, which also covers the prompt: the caller draws the prompt's share,
      :func:`draw_prompt_mask`);
    * every position after the completion (after the first EOS) is masked, always (``~completion_mask``).

    Args:
        completion: (N, L) bool, the tokens that count (scored and in t): each row a non-empty prefix, the
            response up to and including its first EOS (SPG's ``completion_mask``).
        n_t: MC samples per response (SPG's ``num_t``).
        block_length: the decoding block length b; position i belongs to block i // b.
        p_noise: probability of masking each position of the blocks before the chosen one.
        generator: source of randomness, or one generator per response.

    Returns:
        A :class:`MaskDraw`: mask (n_t, N, L) and t (n_t, N) = |masked ∩ completion| / n, the empirical masking
        level (the release's ``empirical_t``).
    """
    _check_n_t(n_t)
    if not isinstance(generator, torch.Generator):
        draw = lambda rows, g: draw_block_masks(completion[rows], n_t, block_length, p_noise, g)  # noqa: E731
        return _per_row(draw, completion.shape[0], generator)
    if block_length < 1:
        raise ValueError(f"block_length must be ≥ 1, got {block_length}; set method.block_length")
    if not 0.0 <= p_noise <= 1.0:
        raise ValueError(f"p_noise must lie in [0, 1], got {p_noise}")
    completion = completion.bool()
    n, length = completion.shape
    device = completion.device
    lengths = completion.sum(-1)  # (N,) n_i
    if bool((lengths == 0).any()):
        raise ValueError("every response needs at least one counted token (response_mask has an empty row)")
    positions = torch.arange(length, device=device)
    if not torch.equal(completion, positions[None] < lengths[:, None]):
        raise ValueError("SPG's block masks need each row's completion to be a prefix of the response")
    block_of = positions // block_length  # (L,)
    num_blocks = int(block_of[-1]) + 1
    blocks = (lengths - 1) // block_length + 1  # (N,) c_i, the blocks holding completion tokens
    rounds = -(-n_t // num_blocks)
    perm = torch.rand(n, rounds, num_blocks, generator=generator, device=device).argsort(-1)
    chosen = (perm.reshape(n, rounds * num_blocks)[:, :n_t] % blocks[:, None]).T  # (n_t, N)
    in_block = (block_of[None, None] == chosen[..., None]) & completion[None]  # (n_t, N, L)
    size = in_block.sum(-1)  # (n_t, N), ≥ 1: the chosen block starts inside the completion
    k = (torch.rand(n_t, n, generator=generator, device=device, dtype=torch.float64) * size).floor().long() + 1
    k = torch.minimum(k, size)
    scores = torch.rand(n_t, n, length, generator=generator, device=device).masked_fill(~in_block, float("inf"))
    mask = scores.argsort(-1).argsort(-1) < k[..., None]  # k of the chosen block's completion tokens
    mask |= block_of[None, None] > chosen[..., None]  # later blocks: not decoded yet
    noise = torch.rand(n_t, n, length, generator=generator, device=device) < p_noise
    mask |= noise & (block_of[None, None] < chosen[..., None])  # earlier blocks only
    mask |= ~completion[None]  # after the first EOS: always masked
    t = (mask & completion[None]).sum(-1).double() / lengths.double()[None]
    return MaskDraw(mask=mask, t=t)


def draw_prompt_mask(prompt_mask: Tensor, p: float, generator: Randomness) -> Tensor:
    """Mask each real prompt token independently with probability ``p`` (d1's prompt noise).

    Args:
        prompt_mask: (N, P) bool, False on left padding.
        p: masking probability in [0, 1] (d1 uses 0.15).
        generator: source of randomness, or one generator per row.

    Returns:
        (N, P) bool, True where the prompt token is replaced by M.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"the prompt masking probability must lie in [0, 1], got {p}; set method.p_mask_prompt")
    if not isinstance(generator, torch.Generator):
        if len(generator) != prompt_mask.shape[0]:
            raise ValueError(f"got {len(generator)} generators for {prompt_mask.shape[0]} rows")
        u = torch.stack([torch.rand(prompt_mask.shape[1:], generator=g, device=prompt_mask.device) for g in generator])
    else:
        u = torch.rand(prompt_mask.shape, generator=generator, device=prompt_mask.device)
    return (u < p) & prompt_mask.bool()


def masked_inputs(
    batch: RolloutBatch, response_noise: Tensor, prompt_noise: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Model inputs for masked copies of the batch.

    Args:
        batch: the rollout batch (N responses).
        response_noise: (k, N, L) bool, response positions to replace by M, for k copies.
        prompt_noise: optional (k, N, P) or (N, P) bool, prompt positions to replace by M.

    Returns:
        input_ids (k·N, P + L) and attention_mask (k·N, P + L), copy-major.
    """
    k, n, length = response_noise.shape
    if (n, length) != tuple(batch.response_ids.shape):
        raise ValueError(
            f"mask shape {tuple(response_noise.shape)} does not match the responses "
            f"{tuple(batch.response_ids.shape)}; expected (k, {batch.num_responses}, {batch.response_length})"
        )
    m = batch.mask_token_id
    response = torch.where(response_noise, m, batch.response_ids[None])  # (k, N, L)
    prompt = batch.prompt_ids[None].expand(k, -1, -1)  # (k, N, P)
    if prompt_noise is not None:
        prompt = torch.where(prompt_noise, m, prompt)
    ids = torch.cat([prompt, response], dim=-1).reshape(k * n, -1)
    attn = torch.cat([batch.prompt_mask, torch.ones_like(batch.response_ids, dtype=torch.bool)], dim=-1)
    attn = attn[None].expand(k, -1, -1).reshape(k * n, -1)
    return ids, attn


def _log_softmax_dtype(logits: Tensor) -> Tensor:
    # Half-precision logits are upcast for the softmax: bf16 log-probabilities lose ~3 digits.
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


def masked_logprobs(
    policy: torch.nn.Module,
    batch: RolloutBatch,
    mask: Tensor,
    *,
    prompt_noise: Tensor | None = None,
    score: Tensor | None = None,
) -> Tensor:
    """Per-token log p_θ(y^i | y_t, x) of k masked copies of the batch, in one forward pass.

    Args:
        policy: a :class:`~bgpo.models.DiffusionLM` (or a wrapper with the same call signature).
        batch: N responses.
        mask: (k, N, L) bool, response positions replaced by M.
        prompt_noise: optional (k, N, P) bool, prompt positions replaced by M.
        score: (k, N, L) bool, positions to score; default ``mask`` (the ELBO scores what is masked).

    Returns:
        (k, N, L) log-probabilities at scored positions, 0 elsewhere; differentiable w.r.t. the policy.
    """
    if mask.dim() != 3 or mask.shape[1:] != batch.response_ids.shape:
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not match the responses {tuple(batch.response_ids.shape)}; "
            f"expected (k, {batch.num_responses}, {batch.response_length})"
        )
    score = mask if score is None else score
    if score.shape != mask.shape:
        raise ValueError(f"score shape {tuple(score.shape)} must equal mask shape {tuple(mask.shape)}")
    k, n, length = mask.shape
    ids, attn = masked_inputs(batch, mask, prompt_noise)
    scored = score.reshape(k * n, length)
    # Only the scored positions go through the LM head: (M, V) logits instead of (k·N, L, V).
    keep = torch.cat([torch.zeros_like(ids[:, :-length], dtype=torch.bool), scored], dim=1)
    logits = _log_softmax_dtype(policy(ids, attn, logits_to_keep=keep))  # (M, V)
    targets = batch.response_ids[None].expand(k, -1, -1).reshape(k * n, length)[scored]
    logp = -F.cross_entropy(logits, targets, reduction="none")  # (M,)
    out = torch.zeros(scored.shape, dtype=logp.dtype, device=logp.device).masked_scatter(scored, logp)
    return out.reshape(k, n, length)


def elbo_terms(
    policy: torch.nn.Module,
    batch: RolloutBatch,
    mask: Tensor,
    t: Tensor,
    *,
    length_normalise: bool = False,
) -> Tensor:
    """Per-sample ELBO terms ℓ_θ(y_t, t, y | x) for k masked copies in one forward pass.

    ℓ(y_t, t, y|x) = (1/t) · Σ_i 1[y_t^i = M] · log p_θ(y^i | y_t, x)    (SPEC §1; Eq. 4 of BGPO)

    Args:
        policy: a :class:`~bgpo.models.DiffusionLM` (or a wrapper with the same call signature).
        batch: N responses.
        mask: (k, N, L) bool masks (from :func:`draw_masks`); ``(N, L)`` is taken as k = 1.
        t: (k, N) masking levels in (0, 1]; ``(N,)`` is taken as k = 1.
        length_normalise: divide by the number of counted response tokens L (a per-token ELBO; the
            authors' code does this, SPEC §2).

    Returns:
        (k, N) ℓ values ((N,) if the inputs had no sample dimension), differentiable w.r.t. the policy.
    """
    squeeze = mask.dim() == 2
    if squeeze:
        mask, t = mask[None], t[None]
    if mask.dim() != 3 or t.shape != mask.shape[:2]:
        raise ValueError(
            f"mask must be (k, N, L) and t (k, N) with the same k and N, got {tuple(mask.shape)} and {tuple(t.shape)}"
        )
    if not bool(((t > 0) & (t <= 1)).all()):
        raise ValueError(
            f"every t must lie in (0, 1], got min {t.min().item():.4g} and max {t.max().item():.4g}; "
            "draw masks with bgpo.diffusion.draw_masks"
        )
    counted = batch.counted()
    if mask.shape[1:] == counted.shape and bool((mask & ~counted[None]).any()):
        raise ValueError("mask covers response tokens that response_mask excludes")
    sums = masked_logprobs(policy, batch, mask).sum(-1)  # (k, N)
    ell = sums / t.to(sums.dtype)
    if length_normalise:
        ell = ell / counted.sum(-1).to(ell.dtype)
    return ell[0] if squeeze else ell


def one_pass_logprobs(policy: torch.nn.Module, batch: RolloutBatch, prompt_noise: Tensor) -> Tensor:
    """d1's one-pass estimate: per-token log p of every response token with the whole response masked.

    The response is fully masked, each real prompt token is masked where ``prompt_noise`` says (d1 draws it
    with p = 0.15, :func:`draw_prompt_mask`), and one forward pass scores all counted response tokens.
    There is no 1/t weight (SPEC §3).

    Args:
        policy: the model.
        batch: N responses.
        prompt_noise: (N, P) bool prompt mask.

    Returns:
        (N, L) per-token log-probabilities; 0 where ``response_mask`` excludes the token.
    """
    if prompt_noise.shape != batch.prompt_ids.shape:
        raise ValueError(
            f"prompt_noise shape {tuple(prompt_noise.shape)} must equal prompt_ids shape "
            f"{tuple(batch.prompt_ids.shape)}"
        )
    counted = batch.counted()
    everything = torch.ones_like(counted)[None]  # (1, N, L): every response token masked
    return masked_logprobs(policy, batch, everything, prompt_noise=prompt_noise[None], score=counted[None])[0]
