"""diffu-GRPO: d1's one-pass likelihood estimate in a GRPO objective (Zhao et al., "d1", arXiv 2504.12216).

Estimator (SPEC §3): one forward pass per response with the **whole response masked** and each prompt token
masked with probability p = 0.15; per-token log p of the response tokens, no 1/t weight
(:class:`~bgpo.estimators.OnePass`). n_t = 1 by construction.

Two modes:

* ``paper`` (default): as the BGPO paper runs it, inside the same on-policy framework as BGPO: the
  sequence estimate B̂ (mean of the per-token log p over the response) enters the same sequence-level
  objective exp(B̂_θ − B̂_old)·A as VRPO-OL, with the same advantages and trainer. On-policy this is one
  forward pass with gradient per response per update.
* ``d1``: as d1 released it (``diffu-grpo/diffu_grpo_trainer.py``): token-level PPO ratio
  ρ_k = exp(log p_θ,k − log p_old,k) clipped at ε = 0.5; k3 KL estimate exp(r − log p_θ) − (r − log p_θ) − 1
  to a frozen reference r with β = 0.04; loss Σ_tokens(−min(ρA, clip(ρ)A) + β·KL) over the completion tokens
  (up to and including the first EOS) divided by the number of completion tokens of the mini-batch;
  μ = 12 inner updates per rollout batch, update i using its own prompt mask, shared by old, reference
  and current policy. d1 also uses A = r − mean (``train.advantage: mean``), LoRA r = 128 and lr 3e-6;
  those are trainer settings, set by the ``diffu_grpo_d1`` variant in ``configs/methods/``.

Omitted / changed: d1 masks and attends left-padding tokens (its forward pass has no attention mask); here
padding is neither masked nor attended. d1 reseeds the global RNG per inner update; here the μ prompt
masks come from the method's generator.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from bgpo.batch import RolloutBatch
from bgpo.config import require, require_choice
from bgpo.estimators import OnePass, OnePassSettings
from bgpo.methods import LossChunk, Method, MethodConfig, register_method

MODES = ("paper", "d1")


@dataclass
class DiffuGRPOConfig(OnePassSettings, MethodConfig):
    """diffu-GRPO's settings (p_mask_prompt 0.15 and length_normalise: see :class:`OnePassSettings`).

    Attributes:
        mode: ``paper`` (BGPO's framework, SPEC §3) or ``d1`` (as released).
        clip_epsilon: d1 mode's PPO clip ε (d1 train.yaml: 0.5).
        kl_beta: d1 mode's KL weight β (d1 train.yaml: 0.04); 0 disables the reference model.
        num_iterations: d1 mode's μ inner updates per rollout batch (d1 train.yaml: 12).
    """

    mode: str = "paper"
    clip_epsilon: float = 0.5
    kl_beta: float = 0.04
    num_iterations: int = 12

    def __post_init__(self) -> None:
        super().__post_init__()
        require_choice(self.mode, MODES, "method.mode")
        require(self.clip_epsilon > 0, f"clip_epsilon must be > 0, got {self.clip_epsilon}; set method.clip_epsilon")
        require(self.kl_beta >= 0, f"kl_beta must be ≥ 0, got {self.kl_beta}; set method.kl_beta")
        require(
            isinstance(self.num_iterations, int) and self.num_iterations >= 1,
            f"num_iterations must be an integer ≥ 1, got {self.num_iterations!r}; set method.num_iterations",
        )


def completion_mask(batch: RolloutBatch) -> Tensor:
    """(N, L) bool: counted tokens up to and including the first EOS (all of them if there is none)."""
    counted = batch.counted()
    if batch.eos_token_id is None:
        return counted
    is_eos = batch.response_ids == batch.eos_token_id
    before = is_eos.long().cumsum(-1) - is_eos.long()  # EOS tokens strictly before each position
    return counted & (before == 0)


@register_method("diffu_grpo")
class DiffuGRPO(Method):
    """d1's one-pass estimator; sequence-level objective (``paper``) or token-level PPO + KL (``d1``)."""

    Config = DiffuGRPOConfig
    config: DiffuGRPOConfig

    def __init__(self, config: DiffuGRPOConfig | None = None) -> None:
        super().__init__(config)
        self.estimator = OnePass.from_settings(self.config)
        # Paper mode: the objective is a multiple of A. d1 mode: the KL term does not vanish at A = 0.
        self.zero_advantage_is_zero_loss = self.config.mode == "paper"

    @property
    def d1(self) -> bool:
        """True in d1 mode."""
        return self.config.mode == "d1"

    @property
    def updates_per_batch(self) -> int:
        """μ in d1 mode, else 1."""
        return self.config.num_iterations if self.d1 else 1

    @property
    def needs_reference(self) -> bool:
        """d1 mode with β > 0 penalises KL to a frozen reference."""
        return self.d1 and self.config.kl_beta > 0

    @torch.no_grad()
    def prepare(
        self,
        policy: torch.nn.Module,
        batch: RolloutBatch,
        generator: torch.Generator,
        *,
        on_policy: bool = False,
        reference: torch.nn.Module | None = None,
    ) -> dict[str, Tensor]:
        """Draw the prompt masks (one per update) and old (and reference) log-probabilities on them."""
        if self.needs_reference and reference is None:
            raise ValueError("diffu_grpo in d1 mode with kl_beta > 0 needs the reference policy; pass reference=")
        noise = self.estimator.draw(batch, generator, copies=self.updates_per_batch)  # (N, μ, P)
        state: dict[str, Tensor] = {"prompt_noise": noise}
        per_update = range(self.updates_per_batch)
        if not on_policy:
            old = [self.estimator.token_logprobs(policy, batch, noise[:, i]) for i in per_update]
            state["logp_old"] = torch.stack(old, dim=1)  # (N, μ, L)
        if self.needs_reference:
            ref = [self.estimator.token_logprobs(reference, batch, noise[:, i]) for i in per_update]
            state["logp_ref"] = torch.stack(ref, dim=1)  # (N, μ, L)
        if self.d1:
            # d1 divides the summed token losses by the completion tokens of the whole mini-batch: each
            # response's token sum is scaled by N / (tokens), so the driver's mean over N gives that.
            # In float64: N / tokens of two int64 tensors would be a float32 tensor (torch's default dtype).
            scale = batch.num_responses / max(int(completion_mask(batch).sum()), 1)
            state["token_scale"] = torch.full((batch.num_responses,), scale, dtype=torch.float64)
        return state

    def loss_chunks(
        self, policy: torch.nn.Module, batch: RolloutBatch, state: Mapping[str, Tensor], *, update: int = 0
    ) -> Iterator[LossChunk]:
        """One chunk: the one-pass forward of every response of the micro-batch."""
        i = update % self.updates_per_batch
        logp = self.estimator.token_logprobs(policy, batch, state["prompt_noise"][:, i])  # (N, L)
        logp_old = state["logp_old"][:, i] if "logp_old" in state else logp.detach()
        a = batch.advantages.to(logp.dtype)
        if not self.d1:
            seq, seq_old = self.estimator.sequence(logp, batch), self.estimator.sequence(logp_old, batch)
            objective = torch.exp(seq - seq_old) * a  # (N,), as VRPO-OL with the one-pass B̂
            yield LossChunk(loss=-objective.sum(), metrics={"objective": objective.detach().sum()})
            return
        eps, beta = self.config.clip_epsilon, self.config.kl_beta
        ratio = torch.exp(logp - logp_old)  # (N, L)
        surrogate = torch.minimum(ratio * a[:, None], ratio.clamp(1 - eps, 1 + eps) * a[:, None])
        per_token = -surrogate
        metrics = {"objective": (surrogate.detach() * completion_mask(batch)).sum()}
        if beta > 0:
            delta = state["logp_ref"][:, i] - logp
            kl = torch.exp(delta) - delta - 1  # k3 estimator of KL(π_θ ‖ π_ref)
            per_token = per_token + beta * kl
            metrics["kl"] = (kl.detach() * completion_mask(batch)).sum()
        scale = state["token_scale"].to(per_token.dtype)
        loss = ((per_token * completion_mask(batch)).sum(-1) * scale).sum()
        yield LossChunk(loss=loss, metrics={k: v * scale[0] for k, v in metrics.items()})
