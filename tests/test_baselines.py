"""Each baseline's loss on a hand-worked example, and the paper's claims about the baselines.

The hand-worked examples use a model whose logits do not depend on the input (one logit table per response
position), so every log-probability is a number we can write down:

    θ:     position 0 p = (1/4, 1/2, 1/4), position 1 p = (1/2, 1/4, 1/4)
    θ_old: p = 1/3 everywhere

Two responses y1 = (0, 1) and y2 = (2, 0), one group, advantages A = (1, −1). So log p_θ(y1) per token is
(log 1/4, log 1/4) and log p_θ(y2) is (log 1/4, log 1/2); every old log-probability is log 1/3.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from baselines.coupled_grpo import draw_pairs
from baselines.diffu_grpo import completion_mask
from baselines.spg import spg_bounds
from bgpo.batch import RolloutBatch
from bgpo.memory import track_memory
from bgpo.methods import accumulate_gradients, build_method
from bgpo.testing import random_batch

LOG = math.log


class FixedLogits(nn.Module):
    """Response logits from a (L, V) table, whatever the input: log-probabilities are known by hand."""

    def __init__(self, table: list[list[float]]) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.tensor(table, dtype=torch.float64).log())

    def forward(self, input_ids, attention_mask=None, logits_to_keep=0):
        n, s = input_ids.shape
        length, vocab = self.table.shape
        prompt = torch.zeros(n, s - length, vocab, dtype=self.table.dtype)
        logits = torch.cat([prompt, self.table[None].expand(n, -1, -1)], dim=1)  # (N, S, V)
        if isinstance(logits_to_keep, torch.Tensor):
            return logits[logits_to_keep] if logits_to_keep.dim() == 2 else logits[:, logits_to_keep]
        return logits[:, -logits_to_keep:] if logits_to_keep else logits


def theta():
    return FixedLogits([[1, 2, 1], [2, 1, 1]])


def theta_old():
    return FixedLogits([[1, 1, 1], [1, 1, 1]])


def two_responses(**kwargs) -> RolloutBatch:
    return RolloutBatch(
        prompt_ids=torch.tensor([[5], [5]]),
        prompt_mask=torch.ones(2, 1, dtype=torch.bool),
        response_ids=torch.tensor([[0, 1], [2, 0]]),
        advantages=torch.tensor([1.0, -1.0], dtype=torch.float64),
        mask_token_id=9,
        group_size=2,
        **kwargs,
    )


def loss_of(name, config, state, batch=None, model=None):
    method = build_method(name, config)
    return accumulate_gradients(method, model or theta(), batch or two_responses(), state).loss


# Masks used for the MC methods: sample 1 masks position 0 only (t = 1/2), sample 2 masks both (t = 1).
MC_MASK = torch.tensor([[[True, False], [True, True]]] * 2)  # (N, n_t, L)
MC_T = torch.tensor([[0.5, 1.0]] * 2, dtype=torch.float64)


def test_diffu_grpo_paper_mode_by_hand():
    batch = two_responses()
    method = build_method("diffu_grpo", {"mode": "paper"})
    state = method.prepare(theta_old(), batch, torch.Generator().manual_seed(0))
    # B̂ = mean token log p: y1 log(1/4), y2 (log 1/4 + log 1/2)/2 = log(1/(2√2)); B̂_old = log(1/3).
    ratio1, ratio2 = 3 / 4, 3 / (2 * math.sqrt(2))
    want = -(ratio1 * 1 + ratio2 * -1) / 2
    assert accumulate_gradients(method, theta(), batch, state).loss == pytest.approx(want, abs=1e-12)


def test_diffu_grpo_d1_mode_by_hand():
    batch = two_responses(eos_token_id=7)
    method = build_method("diffu_grpo", {"mode": "d1", "clip_epsilon": 0.2, "kl_beta": 0.04, "num_iterations": 2})
    state = method.prepare(theta_old(), batch, torch.Generator().manual_seed(0), reference=theta_old())
    # Token ratios p_θ/p_old: y1 (3/4, 3/4), y2 (3/4, 3/2); clip range [0.8, 1.2].
    # A = 1: min(ρ, clip ρ) = 3/4 twice. A = −1: min(−3/4, −0.8) = −0.8 and min(−1.5, −1.2) = −1.5.
    surrogate = [0.75, 0.75, -0.8, -1.5]
    # k3 KL to the reference (= θ_old): e^δ − δ − 1 with δ = log(p_ref/p_θ) = log(4/3), log(4/3), log(4/3), log(2/3).
    kl = [4 / 3 - LOG(4 / 3) - 1] * 3 + [2 / 3 - LOG(2 / 3) - 1]
    want = sum(-s + 0.04 * k for s, k in zip(surrogate, kl, strict=True)) / 4  # / completion tokens
    for update in (0, 1):  # the μ updates use their own prompt masks; the model ignores them here
        got = accumulate_gradients(method, theta(), batch, state, update=update).loss
        assert got == pytest.approx(want, abs=1e-12)
    assert method.updates_per_batch == 2 and method.needs_reference


def test_d1_mode_normaliser_is_exact_in_float64():
    # 2 responses, 3 + 4 = 7 completion tokens: the scale is N / 7 = 2/7, which float32 rounds (2/7 ≈ 0.2857142984).
    batch = RolloutBatch(
        prompt_ids=torch.tensor([[5], [5]]),
        prompt_mask=torch.ones(2, 1, dtype=torch.bool),
        response_ids=torch.tensor([[3, 4, 7, 7], [3, 4, 4, 4]]),
        advantages=torch.tensor([1.0, -1.0], dtype=torch.float64),
        mask_token_id=9,
        eos_token_id=7,
    )
    method = build_method("diffu_grpo", {"mode": "d1", "kl_beta": 0.0, "num_iterations": 1})
    state = method.prepare(theta_old(), batch, torch.Generator().manual_seed(0), on_policy=True)
    assert state["token_scale"].dtype == torch.float64
    # Exact on purpose: N / tokens is one correctly rounded float64 division, so it must equal Python's 2/7.
    assert state["token_scale"].tolist() == [2 / 7, 2 / 7]


def test_completion_mask_stops_after_the_first_eos():
    batch = RolloutBatch(
        prompt_ids=torch.tensor([[5], [5]]),
        prompt_mask=torch.ones(2, 1, dtype=torch.bool),
        response_ids=torch.tensor([[3, 7, 4, 7], [3, 4, 4, 4]]),
        advantages=torch.zeros(2),
        mask_token_id=9,
        eos_token_id=7,
    )
    assert completion_mask(batch).tolist() == [[True, True, False, False], [True, True, True, True]]


def test_vrpo_ol_by_hand():
    state = {"mask": MC_MASK, "t": MC_T, "ell_old": torch.full((2, 2), LOG(1 / 3), dtype=torch.float64)}
    # ℓ/L with 1/t: y1: sample 1 = 2·log(1/4)/2, sample 2 = 2·log(1/4)/2 → d = (log 3/4, log 3/4).
    # y2: sample 1 = log(1/4), sample 2 = (log 1/4 + log 1/2)/2 → d = (log 3/4, log(3/(2√2))).
    r1 = math.exp(LOG(3 / 4)) * 1
    r2 = math.exp((LOG(3 / 4) + LOG(3 / (2 * math.sqrt(2)))) / 2) * -1
    assert loss_of("vrpo_ol", {"n_t": 2}, state) == pytest.approx(-(r1 + r2) / 2, abs=1e-12)


def test_bgpo_by_hand():
    state = {"mask": MC_MASK, "t": MC_T, "ell_old": torch.full((2, 2), LOG(1 / 3), dtype=torch.float64)}
    # y1 (A ≥ 0, Lemma 1): Σ_j (1 + d_j)·A/2 = 1 + log(3/4). y2 (A < 0, Lemma 2): Σ_j e^{d_j}·A/2.
    g1 = 1 + LOG(3 / 4)
    g2 = -(3 / 4 + 3 / (2 * math.sqrt(2))) / 2
    assert loss_of("bgpo", {"n_t": 2}, state) == pytest.approx(-(g1 + g2) / 2, abs=1e-12)


def test_wd1_by_hand():
    state = build_method("wd1").prepare(theta_old(), two_responses(), torch.Generator().manual_seed(0))
    e, ie = math.e, 1 / math.e
    w_pos = [e / (e + ie), ie / (e + ie)]  # softmax(A) over the group
    w_neg = [ie / (e + ie), e / (e + ie)]  # softmax(−A)
    logp = [2 * LOG(1 / 4), LOG(1 / 4) + LOG(1 / 2)]  # one-pass estimate, summed over tokens
    want = sum(-(wp - wn) * lp for wp, wn, lp in zip(w_pos, w_neg, logp, strict=True))  # one group
    assert loss_of("wd1", {}, state) == pytest.approx(want, abs=1e-12)


@pytest.mark.parametrize("negative", ["eubo", "mix"])
def test_spg_by_hand(negative):
    beta = 1.5
    state = {
        "mask": MC_MASK[:, None],  # (N, μ=1, m=2, L)
        "t": MC_T[:, None],
        "prompt_noise": torch.zeros(2, 1, 2, 1, dtype=torch.bool),
        "token_scale": torch.ones(2, dtype=torch.float64),  # no EOS: n_i / L = 1
    }
    # y1 (A > 0): ELBO = mean_j Σ log p / (t_j·n) = (log(1/4)/(0.5·2) + 2·log(1/4)/2)/2 = log(1/4).
    elbo1 = LOG(1 / 4)
    # y2 (A ≤ 0): ELBO = (log(1/4)/1 + (log(1/4) + log(1/2))/2)/2.
    elbo2 = (LOG(1 / 4) + (LOG(1 / 4) + LOG(1 / 2)) / 2) / 2
    # EUBO: S_0 = ((1/4)^β/0.5 + (1/4)^β/1)/2 (masked in both), S_1 = ((1/2)^β/1)/2 (masked in sample 2 only).
    s0 = ((1 / 4) ** beta / 0.5 + (1 / 4) ** beta / 1) / 2
    s1 = ((1 / 2) ** beta / 1) / 2
    eubo2 = (LOG(s0) + LOG(s1)) / 2 / beta
    bound2 = eubo2 if negative == "eubo" else 0.5 * eubo2 + 0.5 * elbo2
    want = -(1 * elbo1 + -1 * bound2) / 2
    config = {"negative": negative, "eubo_beta": beta, "n_t": 2}
    assert loss_of("spg", config, state) == pytest.approx(want, abs=1e-12)


def test_spg_masks_stop_at_the_first_eos_and_weight_by_the_completion(model, gen):
    batch = random_batch(model, num_responses=4, response_length=12, generator=gen)
    batch.eos_token_id = model.eos_token_id
    batch.response_ids[0, 5] = batch.response_ids[2, 0] = model.eos_token_id  # completions of 6, 12, 1, 12 tokens
    method = build_method("spg", {"n_t": 3, "block_length": 4})
    state = method.prepare(model, batch, gen)
    after_eos = ~completion_mask(batch)
    assert after_eos.sum() == 6 + 11
    assert state["mask"][:, 0].transpose(0, 1)[:, after_eos].all()  # always masked, as SPG's release
    torch.testing.assert_close(state["token_scale"], torch.tensor([6, 12, 1, 12], dtype=torch.float64) / 12)
    assert (state["t"][2] == 1).all()  # a one-token completion is always masked


def test_spg_eubo_is_above_the_elbo_and_finite_for_unmasked_tokens():
    logp = torch.log(torch.tensor([[[0.3, 0.5, 0.0]], [[0.2, 0.0, 0.0]]], dtype=torch.float64))
    logp = logp.nan_to_num(neginf=0.0).requires_grad_(True)
    scored = torch.tensor([[[True, True, False]], [[True, False, False]]])  # token 2 never masked
    t = torch.tensor([[2 / 3], [1 / 3]], dtype=torch.float64)
    elbo, eubo = spg_bounds(logp, scored, t, torch.ones(1, 3, dtype=torch.bool), beta=1.0)
    assert eubo.item() > elbo.item()
    eubo.sum().backward()
    assert torch.isfinite(logp.grad).all()


# coupled-GRPO's pairs: y1 masks position 0 first (t = 1/4), its complement position 1; y2 masks position 1 first
# (t = 1/2), its complement position 0. Weights w = 1/t in the first mask, 1/(1 − t) in the complement.
COUPLED_STATE = {
    "pair_mask": torch.tensor([[True, False], [False, True]])[:, None, None],  # (N, μ=1, n_t=1, L)
    "t": torch.tensor([0.25, 0.5], dtype=torch.float64)[:, None, None],  # (N, μ, n_t)
}
# ℓ_k = (log p_full + w·log p_pair)/2, and the model ignores its input, so ℓ_k = (1 + w)/2 · log p_k:
# y1: factors (1 + 4)/2 = 5/2 and (1 + 4/3)/2 = 7/6; y2: (1 + 2)/2 = 3/2 at both positions.
COUPLED_FACTORS = [[5 / 2, 7 / 6], [3 / 2, 3 / 2]]
LOGP_THETA = [[LOG(1 / 4), LOG(1 / 4)], [LOG(1 / 4), LOG(1 / 2)]]


def _coupled_state(**extra):
    old = torch.tensor([[f * LOG(1 / 3) for f in row] for row in COUPLED_FACTORS], dtype=torch.float64)
    return {**COUPLED_STATE, "logp_old": old[:, None], **extra}


def test_coupled_grpo_paper_mode_by_hand():
    # B̂ − B̂_old = mean_k factor_k·(log p_k − log 1/3): y1 (5/2 + 7/6)/2·log(3/4); y2 3/2·(log(3/4) + log(3/2))/2.
    d1 = (5 / 2 + 7 / 6) / 2 * LOG(3 / 4)
    d2 = 3 / 2 * (LOG(3 / 4) + LOG(3 / 2)) / 2
    want = -(math.exp(d1) * 1 + math.exp(d2) * -1) / 2
    assert loss_of("coupled_grpo", {"mode": "paper"}, _coupled_state()) == pytest.approx(want, abs=1e-12)


def test_coupled_grpo_release_mode_by_hand():
    config = {"mode": "release", "clip_epsilon": 0.5, "kl_beta": 0.01, "num_iterations": 1}
    state = _coupled_state(token_scale=torch.full((2,), 2 / 4, dtype=torch.float64))  # N / completion tokens
    state["logp_ref"] = state["logp_old"]  # the reference is θ_old
    # Token ratios ρ = exp(factor·log(p_θ·3)): y1 (3/4)^(5/2), (3/4)^(7/6); y2 (3/4)^(3/2), (3/2)^(3/2).
    ratios = [(3 / 4) ** (5 / 2), (3 / 4) ** (7 / 6), (3 / 4) ** (3 / 2), (3 / 2) ** (3 / 2)]
    # A = 1: min(ρ, clip(ρ, 0.5, 1.5)) = ρ (0.487 and 0.715). A = −1: −max(ρ, clip ρ) = −ρ (0.650 and 1.837).
    surrogate = [ratios[0], ratios[1], -ratios[2], -ratios[3]]
    kl = [1 / r + LOG(r) - 1 for r in ratios]  # k3 with δ = ℓ_ref − ℓ_θ = −log ρ
    want = sum(-s + 0.01 * k for s, k in zip(surrogate, kl, strict=True)) / 4  # / completion tokens
    assert loss_of("coupled_grpo", config, state) == pytest.approx(want, abs=1e-12)


class ScoredPositions(nn.Module):
    """Records which response positions each masked copy scores (``logits_to_keep``) and masks."""

    def __init__(self, inner: nn.Module, length: int) -> None:
        super().__init__()
        self.inner, self.length, self.calls = inner, length, []

    def forward(self, input_ids, attention_mask=None, logits_to_keep=0):
        keep = logits_to_keep[:, -self.length :]
        masked = input_ids[:, -self.length :] == self.inner.mask_token_id
        self.calls.append((keep.clone(), masked.clone(), torch.is_grad_enabled()))
        return self.inner(input_ids, attention_mask, logits_to_keep)


def test_coupled_grpo_scores_every_token_once_per_pair_in_one_forward_pass(model, gen):
    batch = random_batch(model, num_responses=5, response_length=9, generator=gen)
    method = build_method("coupled_grpo", {"n_t": 3})
    state = method.prepare(model, batch, gen, on_policy=True)
    assert ((state["t"] >= 0.2) & (state["t"] <= 0.8)).all()
    probe = ScoredPositions(model, 9)
    accumulate_gradients(method, probe, batch, state)
    [(keep, masked, grad)] = probe.calls  # one forward pass with gradient: 2·n_t + 1 = 7 copies of each response
    keep, masked = keep.view(7, 5, 9), masked.view(7, 5, 9)
    assert grad and masked[0].all() and keep[0].all()  # the fully masked pass scores every token
    for j in range(3):
        first, second = keep[1 + j], keep[4 + j]
        assert not (first & second).any() and (first | second).all()  # each token scored exactly once per pair
        assert torch.equal(first, masked[1 + j]) and torch.equal(second, masked[4 + j])  # scored = masked


def test_coupled_grpo_pairs_follow_their_level_and_per_response_generators(gen):
    counted = torch.ones(400, 50, dtype=torch.bool)
    first, t = draw_pairs(counted, 2, 0.2, 0.8, gen)
    rate = first.double().mean(-1)  # each token masked with probability t
    # rate − t has mean 0 and variance t(1 − t)/50, whose mean over t ~ U[0.2, 0.8] is 0.22/50 = 0.0044.
    assert abs((rate - t).mean().item()) < 0.01  # std of this mean over 800 pairs ≈ 0.0023
    assert (rate - t).pow(2).mean().item() < 0.006
    assert t.min() >= 0.2 and t.max() <= 0.8
    gens = [torch.Generator().manual_seed(i) for i in range(3)]
    alone = draw_pairs(counted[:1], 2, 0.2, 0.8, torch.Generator().manual_seed(2))
    together = draw_pairs(counted[:3], 2, 0.2, 0.8, gens)
    # Exact by construction: the same generator state and the same arithmetic, whatever the rest of the batch.
    assert torch.equal(together[0][2:], alone[0]) and torch.equal(together[1][2:], alone[1])


def test_vrpo_ol_gradient_equals_bgpo_on_the_same_masks(model, gen):
    batch = random_batch(model, generator=gen)
    bgpo = build_method("bgpo", {"n_t": 4})
    vrpo = build_method("vrpo_ol", {"n_t": 4})
    state = bgpo.prepare(model, batch, gen, on_policy=True)
    accumulate_gradients(bgpo, model, batch, state)
    first = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    accumulate_gradients(vrpo, model, batch, state)
    for a, b in zip(first, (p.grad for p in model.parameters()), strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_vrpo_ol_memory_grows_linearly_with_n_t(model, gen):
    batch = random_batch(model, num_responses=8, response_length=16, generator=gen)
    peaks = {}
    for n_t in (1, 2, 4, 8):
        method = build_method("vrpo_ol", {"n_t": n_t, "timesteps": "iid"})
        state = method.prepare(model, batch, gen, on_policy=True)
        with track_memory(exclude=model.parameters()) as report:
            accumulate_gradients(method, model, batch, state)
        peaks[n_t] = report.peak_saved_bytes
    for n_t in (2, 4, 8):
        assert 0.85 * n_t < peaks[n_t] / peaks[1] < 1.15 * n_t, peaks


class CountingPolicy(nn.Module):
    """Counts the rows the policy sees with and without gradient."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.grad_rows = 0
        self.grad_calls = 0
        self.nograd_rows = 0

    def forward(self, input_ids, attention_mask=None, logits_to_keep=0):
        if torch.is_grad_enabled():
            self.grad_rows += input_ids.shape[0]
            self.grad_calls += 1
        else:
            self.nograd_rows += input_ids.shape[0]
        return self.inner(input_ids, attention_mask, logits_to_keep)


@pytest.mark.parametrize("on_policy", [True, False])
def test_diffu_grpo_paper_mode_is_one_forward_pass_per_response(model, gen, on_policy):
    batch = random_batch(model, num_responses=6, generator=gen)
    counting = CountingPolicy(model)
    method = build_method("diffu_grpo", {"mode": "paper"})
    state = method.prepare(counting, batch, gen, on_policy=on_policy)
    assert counting.grad_rows == 0
    stats = accumulate_gradients(method, counting, batch, state, micro_batch_size=6)
    assert (counting.grad_rows, counting.grad_calls, stats.chunks) == (6, 1, 1)
    assert counting.nograd_rows == (0 if on_policy else 6)  # the old values: one no-grad pass, off-policy only
