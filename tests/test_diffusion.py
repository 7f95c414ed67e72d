"""The forward process and the likelihood terms: masks, weights, unbiasedness, shared-mask variance."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from bgpo.batch import RolloutBatch
from bgpo.config import ConfigError
from bgpo.diffusion import (
    draw_block_masks,
    draw_masks,
    draw_prompt_mask,
    elbo_terms,
    masked_inputs,
    one_pass_logprobs,
)
from bgpo.testing import perturbed, random_batch

SCHEMES = ["iid", "stratified"]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_masks_touch_only_counted_response_tokens(scheme, gen):
    counted = torch.ones(5, 9, dtype=torch.bool)
    counted[1, 6:] = False
    counted[3, :2] = False
    draw = draw_masks(counted, 7, scheme, gen)
    assert draw.mask.shape == (7, 5, 9) and draw.t.shape == (7, 5)
    assert not (draw.mask & ~counted).any()
    assert ((draw.t > 0) & (draw.t <= 1)).all()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_masks_are_reproducible_from_the_generator(scheme):
    counted = torch.ones(4, 11, dtype=torch.bool)
    a = draw_masks(counted, 5, scheme, torch.Generator().manual_seed(7))
    b = draw_masks(counted, 5, scheme, torch.Generator().manual_seed(7))
    c = draw_masks(counted, 5, scheme, torch.Generator().manual_seed(8))
    # Exact by construction: integer draws from equal generators, the same arithmetic on them.
    assert torch.equal(a.mask, b.mask) and torch.equal(a.t, b.t)
    assert not torch.equal(a.mask, c.mask)


def test_stratified_counts_are_spread_and_each_marginal_uniform(gen):
    length, n_t = 6, 4  # L/n_t = 1.5: the half-offset case that round-half-to-even would bias
    counted = torch.ones(20000, length, dtype=torch.bool)
    counted[10000:, 4:] = False  # half the rows count only 4 tokens
    draw = draw_masks(counted, n_t, "stratified", gen)
    counts = draw.mask.sum(-1)  # (n_t, N)
    lengths = counted.sum(-1).double()
    # Exact: t is defined as this very quotient of two integers (one IEEE division, correctly rounded).
    torch.testing.assert_close(draw.t, counts.double() / lengths, atol=0, rtol=0)
    for rows, size in ((slice(0, 10000), 6), (slice(10000, None), 4)):
        for j in range(n_t):
            freq = torch.bincount(counts[j, rows], minlength=size + 1)[1:].double() / 10000
            # Each count 1..L has probability 1/L; 5 standard errors of a binomial proportion.
            se = math.sqrt((1 / size) * (1 - 1 / size) / 10000)
            assert (freq - 1 / size).abs().max() < 5 * se, (j, size, freq)
    # Stratification: the n_t counts of one response are all different when n_t ≤ L.
    first = counts[:, :10000].T.sort(-1).values
    assert (first[:, 1:] != first[:, :-1]).all()


def test_iid_masking_rate_matches_t(gen):
    counted = torch.ones(4000, 50, dtype=torch.bool)
    draw = draw_masks(counted, 1, "iid", gen)
    rate = draw.mask[0].double().mean(-1)
    # Given t, the masked fraction is Binomial(50, t)/50: its mean error over 4000 rows is tiny.
    assert (rate - draw.t[0]).mean().abs() < 0.01
    assert draw.t.min() < 0.01 and draw.t.max() > 0.99  # t covers (0, 1]


def test_masked_inputs_keep_the_prompt(model, gen):
    batch = random_batch(model, generator=gen)
    draw = draw_masks(batch.counted(), 3, "iid", gen)
    ids, attn = masked_inputs(batch, draw.mask)
    ids = ids.view(3, batch.num_responses, -1)
    p = batch.prompt_ids.shape[1]
    assert (ids[:, :, :p] == batch.prompt_ids).all()
    response = ids[:, :, p:]
    assert (response[draw.mask] == model.mask_token_id).all()
    assert (response[~draw.mask] == batch.response_ids.expand(3, -1, -1)[~draw.mask]).all()
    assert torch.equal(attn.view(3, batch.num_responses, -1)[0, :, :p], batch.prompt_mask)  # copied booleans


def _manual_elbo(model, batch, mask, t, normalise):
    ids, attn = masked_inputs(batch, mask[None])
    logp = model(ids, attn).log_softmax(-1)[:, -batch.response_length :]
    picked = logp.gather(-1, batch.response_ids[..., None])[..., 0]
    value = (picked * mask).sum(-1) / t
    return value / batch.response_length if normalise else value


@pytest.mark.parametrize("normalise", [False, True])
def test_elbo_term_matches_its_definition(model, gen, normalise):
    batch = random_batch(model, generator=gen)
    draw = draw_masks(batch.counted(), 2, "iid", gen)
    with torch.no_grad():
        got = elbo_terms(model, batch, draw.mask, draw.t, length_normalise=normalise)
        for j in range(2):
            want = _manual_elbo(model, batch, draw.mask[j], draw.t[j], normalise)
            torch.testing.assert_close(got[j], want, atol=1e-12, rtol=0)


def _all_masks(length):
    """Every non-empty subset of the positions, as (2^L − 1, L) bool."""
    rows = [bits for bits in itertools.product([False, True], repeat=length) if any(bits)]
    return torch.tensor(rows)


def _exact_elbo(model, batch, row):
    """B(y|x) = Σ_S (1/|S|) · C(L, |S|)^{-1} · Σ_{i∈S} log p(y_i | y_S)  (t integrated out exactly)."""
    counted = batch.counted()[row]
    length = int(counted.sum())
    subsets = _all_masks(length)
    full = torch.zeros(subsets.shape[0], batch.response_length, dtype=torch.bool)
    full[:, counted] = subsets
    single = batch.select(slice(row, row + 1))
    rep = single.select(torch.zeros(full.shape[0], dtype=torch.long))
    sizes = subsets.sum(-1).double()
    ones = torch.ones(full.shape[0], dtype=torch.float64)
    sums = elbo_terms(model, rep, full[None], ones[None])[0]  # Σ log p with weight 1
    weights = torch.tensor([1 / (m * math.comb(length, int(m))) for m in sizes])
    return float((weights * sums).sum())


@pytest.mark.parametrize("scheme", SCHEMES)
def test_mc_estimate_is_unbiased_against_enumeration(model, gen, scheme):
    batch = random_batch(model, num_responses=2, response_length=6, generator=gen)
    batch.response_mask = torch.tensor([[True] * 6, [True, True, False, True, True, False]])
    draws, n_t = 3000, 2
    with torch.no_grad():
        exact = [_exact_elbo(model, batch, i) for i in range(2)]
        big = batch.select(torch.arange(2).repeat(draws))  # draws copies of both responses
        draw = draw_masks(big.counted(), n_t, scheme, gen)
        estimates = elbo_terms(model, big, draw.mask, draw.t).mean(0).view(draws, 2)  # B̂ per draw
    for i in range(2):
        mean = estimates[:, i].mean().item()
        se = estimates[:, i].std().item() / math.sqrt(draws)
        assert abs(mean - exact[i]) < 4 * se, (scheme, i, mean, exact[i], se)


def test_shared_masks_reduce_the_variance_of_the_log_ratio(model, gen):
    old = perturbed(model, 0.002, gen)  # a nearby old policy, as within one RL step
    batch = random_batch(model, num_responses=4, response_length=8, generator=gen)
    big = batch.select(torch.arange(4).repeat(400))
    with torch.no_grad():
        first = draw_masks(big.counted(), 2, "stratified", gen)
        second = draw_masks(big.counted(), 2, "stratified", gen)
        new_a = elbo_terms(model, big, first.mask, first.t).mean(0)
        old_a = elbo_terms(old, big, first.mask, first.t).mean(0)
        old_b = elbo_terms(old, big, second.mask, second.t).mean(0)
    shared = (new_a - old_a).view(400, 4).var(0)
    independent = (new_a - old_b).view(400, 4).var(0)
    assert (shared * 4 < independent).all(), (shared, independent)


def test_one_pass_masks_the_whole_response_and_some_prompt(model, gen):
    batch = random_batch(model, prompt_length=8, generator=gen)
    noise = draw_prompt_mask(batch.prompt_mask, 0.5, gen)
    assert not (noise & ~batch.prompt_mask).any() and noise.any()
    with torch.no_grad():
        got = one_pass_logprobs(model, batch, noise)
        ids = torch.where(noise, model.mask_token_id, batch.prompt_ids)
        ids = torch.cat([ids, torch.full_like(batch.response_ids, model.mask_token_id)], dim=1)
        attn = torch.cat([batch.prompt_mask, torch.ones_like(batch.response_ids, dtype=torch.bool)], dim=1)
        logp = model(ids, attn).log_softmax(-1)[:, -batch.response_length :]
        want = logp.gather(-1, batch.response_ids[..., None])[..., 0]
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    freq = draw_prompt_mask(torch.ones(200, 100, dtype=torch.bool), 0.15, gen).double().mean()
    assert abs(freq - 0.15) < 0.01


def test_bad_inputs_say_what_to_change(model, gen):
    batch = random_batch(model, generator=gen)
    counted = batch.counted()
    with pytest.raises(ValueError, match=r"n_t .* ≥ 1, got 0; set method.n_t"):
        draw_masks(counted, 0, "iid", gen)
    with pytest.raises(ConfigError, match=r"method.timesteps must be one of 'iid', 'stratified'"):
        draw_masks(counted, 2, "uniform", gen)
    draw = draw_masks(counted, 2, "iid", gen)
    for bad in (0.0, 1.5, -0.2):
        with pytest.raises(ValueError, match=r"t must lie in \(0, 1\]"):
            elbo_terms(model, batch, draw.mask, torch.full_like(draw.t, bad))
    with pytest.raises(ValueError, match="mask must be"):
        elbo_terms(model, batch, draw.mask, draw.t[:1])
    with pytest.raises(ValueError, match="does not match the responses"):
        elbo_terms(model, batch, draw.mask[:, :3], draw.t[:, :3])
    with pytest.raises(ValueError, match="advantages must have shape"):
        RolloutBatch(batch.prompt_ids, batch.prompt_mask, batch.response_ids, torch.zeros(3), 3)
    with pytest.raises(ValueError, match="prompt_mask shape"):
        RolloutBatch(batch.prompt_ids, batch.prompt_mask[:, 1:], batch.response_ids, batch.advantages, 3)
    with pytest.raises(ValueError, match="prompt masking probability"):
        draw_prompt_mask(batch.prompt_mask, 1.5, gen)


# SPG's block-wise masks (facebookresearch/SPG, spg_trainer.py, forward_type "block_random"): L = 12 in blocks of 4.
def _prefix(lengths, total=12):
    return torch.arange(total)[None] < torch.tensor(lengths)[:, None]


def _chosen_blocks(mask, completion, block_length=4):
    """With p_noise = 0 the chosen block is the first one holding a masked completion token: (n_t, N)."""
    masked = mask & completion[None]
    first = torch.where(masked.any(-1), masked.float().argmax(-1), mask.shape[-1])
    return first // block_length


def test_spg_block_masks_leave_the_rest_of_the_chosen_block_clean(gen):
    completion = _prefix([12] * 400)
    draw = draw_block_masks(completion, 3, 4, 0.0, gen)
    chosen = _chosen_blocks(draw.mask, completion)
    block_of = torch.arange(12) // 4
    earlier, here, later = (
        (block_of < chosen[..., None]),
        (block_of == chosen[..., None]),
        (block_of > chosen[..., None]),
    )
    assert not (draw.mask & earlier).any() and (draw.mask | ~later).all()  # earlier clean, later fully masked
    k = (draw.mask & here).sum(-1)  # (n_t, N): k ~ U{1..4} of the chosen block's 4 tokens, the rest clean
    assert k.min() == 1 and k.max() == 4
    assert abs(k.double().mean().item() - 2.5) < 0.1  # the mean of U{1..4}; std of this mean ≈ 0.03
    # With noise everywhere the release still noises only the blocks before the chosen one: the chosen block keeps
    # 4 − k clean tokens (the old masks noised them too, so every position was masked at p_noise = 1).
    noisy = draw_block_masks(completion, 3, 4, 1.0, torch.Generator().manual_seed(5))
    clean = ~noisy.mask  # (n_t, N, L)
    assert clean.any()
    assert abs(clean.sum(-1).double().mean().item() - 1.5) < 0.1  # E[4 − k]
    blocks_with_clean = torch.stack([clean[..., b * 4 : (b + 1) * 4].any(-1) for b in range(3)], -1).sum(-1)
    assert blocks_with_clean.max() == 1  # the clean tokens lie in one block, the chosen one


def test_spg_block_masks_mask_everything_after_the_first_eos(gen):
    completion = _prefix([5, 12, 1, 8])  # completions end in block 1, 2, 0, 1
    draw = draw_block_masks(completion, 3, 4, 0.3, gen)
    assert draw.mask[:, ~completion].all()  # after the first EOS: always masked, whatever the block
    want_t = (draw.mask & completion[None]).sum(-1).double() / completion.sum(-1).double()
    torch.testing.assert_close(draw.t, want_t, rtol=0, atol=0)  # t counts the completion only
    clean_draw = draw_block_masks(completion, 3, 4, 0.0, gen)
    chosen = _chosen_blocks(clean_draw.mask, completion)
    last_block = torch.tensor([1, 2, 0, 1])  # ⌈n/4⌉ − 1: no block past the completion is ever chosen
    assert (chosen <= last_block[None]).all()


def test_spg_block_choice_is_a_permutation_of_all_blocks_modulo_the_completion_blocks():
    # L = 12 holds 3 blocks, the completion (n = 5) spans 2: the release takes perm(3)[j] mod 2, so the first
    # sample's block is 0 with probability 2/3 (perm[0] ∈ {0, 2}); a uniform choice among the two would give 1/2.
    completion = _prefix([5] * 3000)
    draw = draw_block_masks(completion, 2, 4, 0.0, torch.Generator().manual_seed(0))
    chosen = _chosen_blocks(draw.mask, completion)
    assert abs((chosen[0] == 0).double().mean().item() - 2 / 3) < 0.03  # std of the frequency ≈ 0.009
    assert (chosen[0] == chosen[1]).any()  # blocks may repeat within a response (perm = (0, 2, 1): 0, 0)
    # n_t beyond the number of blocks (the release asserts num_t ≤ num_blocks): further permutations follow.
    assert draw_block_masks(completion[:4], 7, 4, 0.0, torch.Generator().manual_seed(0)).mask.shape == (7, 4, 12)


def test_spg_block_masks_need_a_prefix_completion(gen):
    completion = _prefix([6, 6])
    completion[0, 2] = False
    with pytest.raises(ValueError, match="prefix"):
        draw_block_masks(completion, 2, 4, 0.1, gen)
