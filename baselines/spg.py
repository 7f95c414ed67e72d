"""SPG: Sandwiched Policy Gradient (Wang et al., arXiv 2510.09541; facebookresearch/SPG ``spg_trainer.py``).

Plain REINFORCE, −Σ_i A_i · L_i, where the intractable log π(y_i) is replaced by a bound chosen by the
sign of the advantage (SPEC §3):

* A > 0: the ELBO, mean over m masks of the per-token average log p over the masked counted tokens
  (= (1/t_j)·Σ log p / L, BGPO's per-token ℓ);
* A ≤ 0: the EUBO (``negative: eubo``), or the mixture ω·EUBO + (1 − ω)·ELBO with ω = 0.5 (``negative: mix``).
  EUBO = (1/β) · mean_{i∈I} log S_i with S_i = (1/m) Σ_j 1[i masked in j] · p_ij^β / t_j, I the tokens masked
  in at least one sample. Maximising A·L with A ≤ 0 pushes the upper bound down, hence the "sandwich".

Masks are block-wise, as SPG's release builds them (:func:`bgpo.diffusion.draw_block_masks`): per sample one
decoding block of the completion is partially masked, later blocks fully masked, the earlier blocks and the prompt
masked with probability ``p_mask_prompt``, and everything after the first EOS always masked. The completion is
SPG's ``completion_mask``: the counted tokens up to and including the first EOS; only its tokens are scored and
counted in t and in the loss weights. The bounds are non-linear across the m samples (log of a mean), so all m
graphs form one chunk.

Config sources (SPG release): m = num_t = 2; ω = mix_weight = 0.5; β = eubo_beta = 1.5 (GSM8K/MATH; 1.0 for
Sudoku, 2.0 for Countdown with EUBO only); block_length 32 and p_mask_prompt 0.15 (d1's train.yaml, which
SPG's scripts appear to share: unverified); μ = 4 inner updates in the release, here ``num_iterations`` = 1
(one update per rollout batch, as in the BGPO framework). A = r − mean in the release; here the trainer's
shared advantage.

Changed: the release's loss is Σ_i A_i·L_i·n_i / Σ_i n_i over the device batch (n_i the completion tokens); here
each response is weighted by n_i / L (L the padded response length), Σ_i A_i·L_i·n_i/L / N: the trainer may
prepare only the responses with A ≠ 0, so a sum over the whole mini-batch is not available to ``prepare``. The
two differ by the factor mean(n)/L of each batch, a step-size scale; with no EOS before the end (n_i = L) they
are equal. Omitted: KL (β = 0 in the release).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from baselines.diffu_grpo import completion_mask
from bgpo.batch import RolloutBatch
from bgpo.config import require, require_choice
from bgpo.diffusion import draw_block_masks, draw_prompt_mask, masked_logprobs
from bgpo.methods import LossChunk, Method, MethodConfig, register_method

NEGATIVE_BOUNDS = ("eubo", "mix")


@dataclass
class SPGConfig(MethodConfig):
    """SPG's settings (sources in the module docstring).

    Attributes:
        n_t: MC masks m per response (release num_t = 2).
        block_length: decoding block length of the block-wise masks (32, as the sampler, Table 5).
        p_mask_prompt: probability of masking each position of the prompt and of the blocks before the chosen one
            (0.15).
        negative: ``eubo`` or ``mix`` for responses with A ≤ 0.
        mix_weight: ω of the mixture (0.5).
        eubo_beta: β of the EUBO (1.5), ≥ 1.
        num_iterations: inner updates per rollout batch, each with fresh masks (release: 4).
    """

    n_t: int = 2
    block_length: int = 32
    p_mask_prompt: float = 0.15
    negative: str = "mix"
    mix_weight: float = 0.5
    eubo_beta: float = 1.5
    num_iterations: int = 1

    def __post_init__(self) -> None:
        require(
            isinstance(self.n_t, int) and self.n_t >= 1, f"n_t must be an integer ≥ 1, got {self.n_t!r}; set method.n_t"
        )
        require(self.block_length >= 1, f"block_length must be ≥ 1, got {self.block_length}; set method.block_length")
        require(0 <= self.p_mask_prompt <= 1, f"p_mask_prompt must lie in [0, 1], got {self.p_mask_prompt}")
        require_choice(self.negative, NEGATIVE_BOUNDS, "method.negative")
        require(
            0 <= self.mix_weight <= 1, f"mix_weight must lie in [0, 1], got {self.mix_weight}; set method.mix_weight"
        )
        require(self.eubo_beta >= 1, f"eubo_beta must be ≥ 1 for an upper bound, got {self.eubo_beta}")
        require(
            isinstance(self.num_iterations, int) and self.num_iterations >= 1,
            f"num_iterations must be an integer ≥ 1, got {self.num_iterations!r}; set method.num_iterations",
        )


def spg_bounds(logp: Tensor, scored: Tensor, t: Tensor, counted: Tensor, beta: float) -> tuple[Tensor, Tensor]:
    """SPG's ELBO and EUBO estimates from m masked samples.

    Args:
        logp: (m, N, L) log p_ij at scored positions (0 elsewhere).
        scored: (m, N, L) bool, masked counted positions.
        t: (m, N) masking levels |scored| / n.
        counted: (N, L) bool, counted tokens (n = counted.sum(-1)).
        beta: the EUBO's β.

    Returns:
        (elbo, eubo), each (N,).
    """
    m = logp.shape[0]
    n_tokens = counted.sum(-1).to(logp.dtype)
    elbo = (logp.sum(-1) / (t.to(logp.dtype) * n_tokens)).mean(0)
    # log S_i = log Σ_j exp(β·log p_ij − log t_j) − log m over samples where i is masked.
    seen = scored.any(0)  # (N, L): the token set I
    terms = (beta * logp - torch.log(t.to(logp.dtype))[..., None]).masked_fill(~scored, float("-inf"))
    # Tokens never masked would give logsumexp(−inf, …) = −inf and a NaN gradient; they are dropped below.
    terms = terms.masked_fill(~seen[None], 0.0)
    log_s = torch.logsumexp(terms, dim=0) - math.log(m)  # (N, L)
    eubo = torch.where(seen, log_s, 0.0).sum(-1) / (beta * seen.sum(-1).clamp_min(1).to(logp.dtype))
    return elbo, eubo


@register_method("spg")
class SPG(Method):
    """REINFORCE on the ELBO (A > 0) and the EUBO or an EUBO/ELBO mixture (A ≤ 0)."""

    Config = SPGConfig
    zero_advantage_is_zero_loss = True  # the loss is a multiple of A
    config: SPGConfig

    @property
    def updates_per_batch(self) -> int:
        """μ inner updates."""
        return self.config.num_iterations

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
        """Draw block-wise masks and prompt noise for every update (REINFORCE needs no old values)."""
        cfg, completion = self.config, completion_mask(batch)
        masks, ts, noises = [], [], []
        for _ in range(self.updates_per_batch):
            draw = draw_block_masks(completion, cfg.n_t, cfg.block_length, cfg.p_mask_prompt, generator)
            masks.append(draw.mask.transpose(0, 1))  # (N, m, L)
            ts.append(draw.t.T)  # (N, m)
            noise = [draw_prompt_mask(batch.prompt_mask, cfg.p_mask_prompt, generator) for _ in range(cfg.n_t)]
            noises.append(torch.stack(noise, dim=1))  # (N, m, P)
        return {
            "mask": torch.stack(masks, dim=1),  # (N, μ, m, L)
            "t": torch.stack(ts, dim=1),  # (N, μ, m)
            "prompt_noise": torch.stack(noises, dim=1),  # (N, μ, m, P)
            "token_scale": completion.sum(-1).double() / batch.response_length,  # n_i / L
        }

    def loss_chunks(
        self, policy: torch.nn.Module, batch: RolloutBatch, state: Mapping[str, Tensor], *, update: int = 0
    ) -> Iterator[LossChunk]:
        """One chunk with all m samples: −Σ_i A_i·L_i·n_i/L."""
        i = update % self.updates_per_batch
        completion = completion_mask(batch)
        mask = state["mask"][:, i].transpose(0, 1)  # (m, N, L)
        scored = mask & completion[None]
        logp = masked_logprobs(
            policy, batch, mask, prompt_noise=state["prompt_noise"][:, i].transpose(0, 1), score=scored
        )
        elbo, eubo = spg_bounds(logp, scored, state["t"][:, i].T, completion, self.config.eubo_beta)
        if self.config.negative == "mix":
            negative = self.config.mix_weight * eubo + (1 - self.config.mix_weight) * elbo
        else:
            negative = eubo
        a = batch.advantages.to(elbo.dtype)
        bound = torch.where(a > 0, elbo, negative)
        objective = a * bound * state["token_scale"].to(elbo.dtype)
        yield LossChunk(loss=-objective.sum(), metrics={"objective": objective.detach().sum()})
