"""coupled-GRPO: DiffuCoder's complementary-mask likelihood estimate in a GRPO objective (Gong et al.,
"DiffuCoder", arXiv 2506.20639; release apple/ml-diffucoder, ``src/open_r1/coupled_grpo.py``).

Estimator (the release's ``forward_process`` and ``selective_log_softmax``): for each response and each of n_t
mask pairs j, a level t_j ~ U[t_min, t_max] (the release: U[0.2, 0.8]) and a mask A_j that masks each counted
response token with probability t_j; its complement B_j masks every other counted token. So every token is
masked, and scored, in exactly one mask of each pair. One more pass masks the whole response (d1's one-pass
estimate). The per-token estimate is

    ℓ_k = ½ · ( log p(y_k | y fully masked) + (1/n_t)·Σ_j w_jk · log p(y_k | y masked by the pair mask that holds k) ),
    w_jk = 1/t_j if k ∈ A_j, 1/(1 − t_j) if k ∈ B_j,

computed with 2·n_t + 1 masked copies of each response in one forward pass (one chunk). The pair term is the
sum ℓ(A_j, t_j) + ℓ(B_j, 1 − t_j) of the two ELBO terms of SPEC §1 (not their mean): the release's scale, kept.
The release uses one pair, n_t = 1; n_t > 1 averages the pair terms (not in the release).

Two modes, as :mod:`baselines.diffu_grpo`:

* ``paper`` (default): in BGPO's on-policy framework, the sequence estimate B̂ (mean of ℓ_k over the counted
  tokens) enters exp(B̂_θ − B̂_old)·A, the objective of VRPO-OL and of diffu-GRPO's paper mode; one update per
  rollout batch. Only the estimator differs from those baselines.
* ``release``: as DiffuCoder trains: token-level PPO ratio ρ_k = exp(ℓ_k,θ − ℓ_k,old) clipped at ε = 0.5
  (recipe ``epsilon``), k3 KL to a frozen reference with β = 0.01 (recipe ``beta``), loss Σ_tokens(−min(ρA,
  clip(ρ)A) + β·KL) over the completion tokens (up to and including the first EOS) divided by the completion
  tokens of the mini-batch, μ = 2 inner updates (recipe ``num_iterations``), each with masks of its own shared by
  old, reference and current policy. The recipe's ``scale_rewards: false`` is ``train.advantage: mean`` (variant
  ``coupled_grpo_release``).

Omitted / changed: the release draws one t per batch and process (one ``random.uniform`` after ``set_seed``);
here one per response and pair, so a response's masks do not depend on its batch (the method contract). The
release masks every position of the padded completion and never the prompt (``p_mask_prompt: 0.0``); here the
counted tokens (all L in BGPO's setting) and never the prompt. The release's model (Dream) shifts its logits by
one position; LLaDA-style models here do not. Its reference model is re-synced every 64 steps
(``ref_model_sync_steps``); here the reference stays the initial policy.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from baselines.diffu_grpo import completion_mask
from bgpo.batch import RolloutBatch
from bgpo.config import require, require_choice
from bgpo.diffusion import masked_logprobs
from bgpo.methods import LossChunk, Method, MethodConfig, register_method

MODES = ("paper", "release")


@dataclass
class CoupledGRPOConfig(MethodConfig):
    """coupled-GRPO's settings (sources in the module docstring).

    Attributes:
        n_t: complementary mask pairs per response (release: 1).
        t_min, t_max: the range of the pair's masking level t (release: 0.2, 0.8); 0 < t_min ≤ t_max < 1.
        length_normalise: ``paper`` mode's sequence estimate is the mean of ℓ_k over the counted tokens (the
            per-token scale of BGPO's ELBO), else the sum.
        mode: ``paper`` (BGPO's framework) or ``release`` (DiffuCoder's token-level PPO + KL).
        clip_epsilon: release mode's PPO clip ε (recipe: 0.5).
        kl_beta: release mode's KL weight β (recipe: 0.01); 0 needs no reference model.
        num_iterations: release mode's μ inner updates per rollout batch (recipe: 2).
    """

    n_t: int = 1
    t_min: float = 0.2
    t_max: float = 0.8
    length_normalise: bool = True
    mode: str = "paper"
    clip_epsilon: float = 0.5
    kl_beta: float = 0.01
    num_iterations: int = 2

    def __post_init__(self) -> None:
        require(
            isinstance(self.n_t, int) and not isinstance(self.n_t, bool) and self.n_t >= 1,
            f"n_t (mask pairs) must be an integer ≥ 1, got {self.n_t!r}; set method.n_t",
        )
        require(
            0 < self.t_min <= self.t_max < 1,
            f"need 0 < t_min ≤ t_max < 1, got t_min={self.t_min}, t_max={self.t_max}; set method.t_min / method.t_max",
        )
        require_choice(self.mode, MODES, "method.mode")
        require(self.clip_epsilon > 0, f"clip_epsilon must be > 0, got {self.clip_epsilon}; set method.clip_epsilon")
        require(self.kl_beta >= 0, f"kl_beta must be ≥ 0, got {self.kl_beta}; set method.kl_beta")
        require(
            isinstance(self.num_iterations, int) and self.num_iterations >= 1,
            f"num_iterations must be an integer ≥ 1, got {self.num_iterations!r}; set method.num_iterations",
        )


def draw_pairs(
    counted: Tensor, n_t: int, t_min: float, t_max: float, generator: torch.Generator | Sequence[torch.Generator]
) -> tuple[Tensor, Tensor]:
    """Draw n_t complementary mask pairs per response.

    Args:
        counted: (N, L) bool, the tokens that may be masked.
        n_t: pairs per response.
        t_min, t_max: t_j ~ U[t_min, t_max].
        generator: the source of randomness, or one generator per response.

    Returns:
        The first masks A (N, n_t, L) bool (each counted token masked with probability t_j; the complement is
        ``counted & ~A``) and t (N, n_t) float64.
    """
    if not isinstance(generator, torch.Generator):
        if len(generator) != counted.shape[0]:
            raise ValueError(f"got {len(generator)} generators for {counted.shape[0]} responses")
        parts = [draw_pairs(counted[i : i + 1], n_t, t_min, t_max, g) for i, g in enumerate(generator)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    n, length = counted.shape
    device = counted.device
    t = t_min + (t_max - t_min) * torch.rand(n, n_t, generator=generator, device=device, dtype=torch.float64)
    u = torch.rand(n, n_t, length, generator=generator, device=device, dtype=torch.float64)
    return (u < t[..., None]) & counted.bool()[:, None], t


def coupled_token_logprobs(policy: torch.nn.Module, batch: RolloutBatch, first: Tensor, t: Tensor) -> Tensor:
    """The coupled per-token estimate ℓ_k of the module docstring, in one forward pass of 2·n_t + 1 copies.

    Args:
        policy: the model.
        batch: N responses.
        first: (N, n_t, L) bool, the first mask of each pair (:func:`draw_pairs`).
        t: (N, n_t) the pairs' masking levels.

    Returns:
        (N, L) ℓ_k at the counted tokens, 0 elsewhere; differentiable w.r.t. the policy.
    """
    counted = batch.counted()
    n_t = first.shape[1]
    pair_a = first.transpose(0, 1)  # (n_t, N, L)
    pair_b = counted[None] & ~pair_a
    everything = torch.ones_like(counted)[None]  # (1, N, L): the whole response masked
    mask = torch.cat([everything, pair_a, pair_b])  # (2·n_t + 1, N, L)
    score = torch.cat([counted[None], pair_a, pair_b])
    logp = masked_logprobs(policy, batch, mask, score=score)  # (2·n_t + 1, N, L), 0 where not scored
    level = t.T.to(logp.dtype)[..., None]  # (n_t, N, 1)
    # A token is scored in exactly one mask of each pair, so the two weighted terms never overlap.
    pairs = logp[1 : 1 + n_t] / level + logp[1 + n_t :] / (1 - level)  # (n_t, N, L)
    return 0.5 * (logp[0] + pairs.mean(0))


@register_method("coupled_grpo")
class CoupledGRPO(Method):
    """DiffuCoder's coupled estimate; sequence-level objective (``paper``) or token-level PPO + KL (``release``)."""

    Config = CoupledGRPOConfig
    config: CoupledGRPOConfig

    def __init__(self, config: CoupledGRPOConfig | None = None) -> None:
        super().__init__(config)
        # Paper mode: the objective is a multiple of A. Release mode: the KL term does not vanish at A = 0.
        self.zero_advantage_is_zero_loss = self.config.mode == "paper"

    @property
    def release(self) -> bool:
        """True in release mode."""
        return self.config.mode == "release"

    @property
    def updates_per_batch(self) -> int:
        """μ in release mode, else 1."""
        return self.config.num_iterations if self.release else 1

    @property
    def needs_reference(self) -> bool:
        """Release mode with β > 0 penalises KL to a frozen reference."""
        return self.release and self.config.kl_beta > 0

    def _estimate(self, policy: torch.nn.Module, batch: RolloutBatch, state: Mapping[str, Tensor], i: int) -> Tensor:
        return coupled_token_logprobs(policy, batch, state["pair_mask"][:, i], state["t"][:, i])

    @torch.no_grad()
    def prepare(
        self,
        policy: torch.nn.Module,
        batch: RolloutBatch,
        generator: torch.Generator | Sequence[torch.Generator],
        *,
        on_policy: bool = False,
        reference: torch.nn.Module | None = None,
    ) -> dict[str, Tensor]:
        """Draw the mask pairs of every update and the old (and reference) per-token estimates on them."""
        if self.needs_reference and reference is None:
            raise ValueError(
                "coupled_grpo in release mode with kl_beta > 0 needs the reference policy; pass reference="
            )
        cfg = self.config
        draws = [
            draw_pairs(batch.counted(), cfg.n_t, cfg.t_min, cfg.t_max, generator) for _ in range(self.updates_per_batch)
        ]
        state: dict[str, Tensor] = {
            "pair_mask": torch.stack([d[0] for d in draws], dim=1),  # (N, μ, n_t, L)
            "t": torch.stack([d[1] for d in draws], dim=1),  # (N, μ, n_t)
        }
        per_update = range(self.updates_per_batch)
        if not on_policy:
            state["logp_old"] = torch.stack([self._estimate(policy, batch, state, i) for i in per_update], dim=1)
        if self.needs_reference:
            state["logp_ref"] = torch.stack([self._estimate(reference, batch, state, i) for i in per_update], dim=1)
        if self.release:
            # The release divides the summed token losses by the completion tokens of the whole batch: each
            # response's token sum is scaled by N / tokens (float64), so the driver's mean over N gives that.
            scale = batch.num_responses / max(int(completion_mask(batch).sum()), 1)
            state["token_scale"] = torch.full((batch.num_responses,), scale, dtype=torch.float64)
        return state

    def loss_chunks(
        self, policy: torch.nn.Module, batch: RolloutBatch, state: Mapping[str, Tensor], *, update: int = 0
    ) -> Iterator[LossChunk]:
        """One chunk: the 2·n_t + 1 masked copies of every response of the micro-batch."""
        i = update % self.updates_per_batch
        logp = self._estimate(policy, batch, state, i)  # (N, L)
        logp_old = state["logp_old"][:, i].to(logp.dtype) if "logp_old" in state else logp.detach()
        a = batch.advantages.to(logp.dtype)
        if not self.release:
            counted = batch.counted()
            seq, seq_old = logp.sum(-1), logp_old.sum(-1)
            if self.config.length_normalise:
                tokens = counted.sum(-1).to(logp.dtype)
                seq, seq_old = seq / tokens, seq_old / tokens
            objective = torch.exp(seq - seq_old) * a  # (N,), as VRPO-OL with the coupled B̂
            yield LossChunk(loss=-objective.sum(), metrics={"objective": objective.detach().sum()})
            return
        eps, beta = self.config.clip_epsilon, self.config.kl_beta
        tokens = completion_mask(batch)
        ratio = torch.exp(logp - logp_old)  # (N, L)
        surrogate = torch.minimum(ratio * a[:, None], ratio.clamp(1 - eps, 1 + eps) * a[:, None])
        per_token = -surrogate
        metrics = {"objective": (surrogate.detach() * tokens).sum()}
        if beta > 0:
            delta = state["logp_ref"][:, i].to(logp.dtype) - logp
            kl = torch.exp(delta) - delta - 1  # k3 estimator of KL(π_θ ‖ π_ref)
            per_token = per_token + beta * kl
            metrics["kl"] = (kl.detach() * tokens).sum()
        scale = state["token_scale"].to(per_token.dtype)
        loss = ((per_token * tokens).sum(-1) * scale).sum()
        yield LossChunk(loss=loss, metrics={k: v * scale[0] for k, v in metrics.items()})
