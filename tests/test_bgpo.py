"""BGPO's claims as exact tests on a float64 toy model (SPEC §2): linearity, equivalence, lower bound."""

from __future__ import annotations

import pytest
import torch

from bgpo.diffusion import draw_masks, elbo_terms
from bgpo.methods import accumulate_gradients, active_rows, build_method
from bgpo.objectives import bgpo_bound, bgpo_terms, elbo_objective
from bgpo.testing import perturbed, random_batch


def _grads(model):
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def _zero(model):
    for p in model.parameters():
        p.grad = None


@pytest.mark.parametrize("n_t", [1, 2, 8])
def test_chunked_gradients_equal_one_backward_of_the_sum(model, gen, n_t):
    """Linearity: Σ_chunks ∇(−g_j) equals ∇(−Σ_j g_j) computed with all graphs alive."""
    old = perturbed(model, 0.02, gen)  # off-policy, so d ≠ 0 and both lemmas are exercised
    batch = random_batch(model, generator=gen)
    method = build_method("bgpo", {"n_t": n_t})
    state = method.prepare(old, batch, gen)
    stats = accumulate_gradients(method, model, batch, state)
    assert stats.chunks == n_t
    chunked = _grads(model)
    _zero(model)
    ell = elbo_terms(model, batch, state["mask"].transpose(0, 1), state["t"].T, length_normalise=True)
    total = -bgpo_bound(ell, state["ell_old"].T, batch.advantages).sum() / batch.num_responses
    total.backward()
    torch.testing.assert_close(chunked, _grads(model), atol=1e-10, rtol=0)
    assert abs(stats.loss - total.item()) < 1e-10


@pytest.mark.parametrize("n_t", [1, 4])
@pytest.mark.parametrize("scheme", ["iid", "stratified"])
def test_on_policy_value_and_gradient_equal_the_elbo_objective(model, gen, n_t, scheme):
    """Equivalence: at θ = θ_old, R̂_lb = R̂ = A and ∇R̂_lb = ∇R̂, for A > 0, A < 0 and A = 0."""
    advantages = torch.tensor([1.3, -0.7, 0.0, 2.0, -1.5, 0.0, 0.4, -0.1], dtype=torch.float64)
    batch = random_batch(model, generator=gen, advantages=advantages)
    draw = draw_masks(batch.counted(), n_t, scheme, gen)
    ell = elbo_terms(model, batch, draw.mask, draw.t, length_normalise=True)
    with torch.no_grad():
        ell_old = elbo_terms(model, batch, draw.mask, draw.t, length_normalise=True)
    bound = bgpo_bound(ell, ell_old, advantages)
    reference = elbo_objective(ell, ell_old, advantages)
    torch.testing.assert_close(bound, reference, atol=1e-10, rtol=0)
    torch.testing.assert_close(bound, advantages, atol=1e-10, rtol=0)
    for i in range(batch.num_responses):
        g_bound = torch.autograd.grad(bound[i], list(model.parameters()), retain_graph=True)
        g_ref = torch.autograd.grad(reference[i], list(model.parameters()), retain_graph=True)
        for a, b in zip(g_bound, g_ref, strict=True):
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
        if advantages[i] != 0 and draw.mask[:, i].any():  # (an i.i.d. draw may mask nothing)
            assert max(g.abs().max() for g in g_bound) > 1e-6  # a real gradient, not 0 = 0


def test_on_policy_method_gradient_equals_the_elbo_objective(model, gen):
    """The registered method, on-policy (old values taken from the first pass), against the reference."""
    advantages = torch.tensor([1.0, -2.0, 0.0, 0.5, -0.5, 1.5, 0.0, -1.0], dtype=torch.float64)
    batch = random_batch(model, generator=gen, advantages=advantages)
    method = build_method("bgpo", {"n_t": 4, "samples_per_chunk": 3})  # chunks of 3 and 1 samples
    state = method.prepare(model, batch, gen, on_policy=True)
    assert "ell_old" not in state
    stats = accumulate_gradients(method, model, batch, state, micro_batch_size=3)
    chunked = _grads(model)
    _zero(model)
    ell = elbo_terms(model, batch, state["mask"].transpose(0, 1), state["t"].T, length_normalise=True)
    objective = elbo_objective(ell, ell.detach(), advantages).mean()
    (-objective).backward()
    torch.testing.assert_close(chunked, _grads(model), atol=1e-10, rtol=0)
    assert abs(stats.metrics["objective"] - advantages.mean().item()) < 1e-10


def test_skipping_zero_advantage_rows_changes_nothing(model, gen):
    advantages = torch.tensor([1.0, 0.0, -2.0, 0.0, 0.0, 0.5, 0.0, -1.0], dtype=torch.float64)
    batch = random_batch(model, generator=gen, advantages=advantages)
    method = build_method("bgpo", {"n_t": 3})
    old = perturbed(model, 0.02, gen)
    state = method.prepare(old, batch, gen)
    accumulate_gradients(method, model, batch, state)
    full = _grads(model)
    _zero(model)
    rows = active_rows(method, batch)
    assert rows.tolist() == [0, 2, 5, 7]
    accumulate_gradients(
        method,
        model,
        batch.select(rows),
        {k: v[rows] for k, v in state.items()},
        normaliser=batch.num_responses,
    )
    torch.testing.assert_close(_grads(model), full, atol=1e-12, rtol=0)


def test_bound_is_below_the_elbo_objective_off_policy(model, gen):
    """Lower bound: R̂_lb ≤ R̂ for every response, for many perturbed policies and mask draws."""
    checked = 0
    for _ in range(40):
        scale = float(torch.empty(1).uniform_(0.005, 0.2, generator=gen))
        old = perturbed(model, scale, gen)
        batch = random_batch(model, num_responses=6, generator=gen)
        n_t = int(torch.randint(1, 6, (1,), generator=gen))
        draw = draw_masks(batch.counted(), n_t, "stratified", gen)
        with torch.no_grad():
            ell = elbo_terms(model, batch, draw.mask, draw.t, length_normalise=True)
            ell_old = elbo_terms(old, batch, draw.mask, draw.t, length_normalise=True)
        bound = bgpo_bound(ell, ell_old, batch.advantages)
        reference = elbo_objective(ell, ell_old, batch.advantages)
        assert (bound <= reference + 1e-12).all(), (bound, reference)
        assert (ell - ell_old).abs().max() > 1e-4  # really off-policy
        checked += batch.num_responses
    assert checked == 240


def test_bound_is_finite_and_below_where_d_is_at_most_minus_one():
    ell_old = torch.zeros(3, 4, dtype=torch.float64)
    ell = torch.tensor(
        [[-1.0, -5.0, -30.0, 0.3], [-2.0, -1.0, -50.0, 800.0], [-1.5, -3.0, 2.0, -1.0]],
        dtype=torch.float64,
        requires_grad=True,
    )
    advantages = torch.tensor([1.0, -1.0, 2.0, 0.5], dtype=torch.float64)
    bound = bgpo_bound(ell, ell_old, advantages)
    reference = elbo_objective(ell, ell_old, advantages)
    assert torch.isfinite(bound).all()
    assert (bound <= reference).all()
    bound.sum().backward()
    # d = 800 with A ≥ 0 uses the tangent; exp(800) = inf in the unused branch must not leak a NaN.
    assert torch.isfinite(ell.grad).all()
    torch.testing.assert_close(ell.grad[:, 0], torch.full((3,), 1 / 3, dtype=torch.float64))


def test_lemma_variants_by_hand():
    d = torch.tensor([[0.5, -0.5]], dtype=torch.float64)
    zero = torch.zeros_like(d)
    adv = torch.tensor([2.0, -2.0], dtype=torch.float64)
    e = torch.exp(torch.tensor(0.5, dtype=torch.float64))
    both = bgpo_terms(d, zero, adv, 2, "both")
    lemma1 = bgpo_terms(d, zero, adv, 2, "lemma1")
    lemma2 = bgpo_terms(d, zero, adv, 2, "lemma2")
    torch.testing.assert_close(both, torch.tensor([[1.5 * 2 / 2, -(1 / e) * 2 / 2]], dtype=torch.float64))
    torch.testing.assert_close(lemma1, torch.tensor([[1.5 * 2 / 2, 0.5 * -2 / 2]], dtype=torch.float64))
    torch.testing.assert_close(lemma2, torch.tensor([[e * 2 / 2, -(1 / e) * 2 / 2]], dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_no_finite_log_ratio_overflows_the_bound_or_its_gradient(dtype):
    """A < 0 with d = ±50 (and far beyond): the terms and their gradient stay finite; ordinary d is exact e^d."""
    d = torch.tensor([50.0, -50.0, 1e4, -1e4, 1e30, -1e30, 0.3, -0.3], dtype=dtype)
    for sign in (-1.0, 1.0):
        ell = d.clone().requires_grad_(True)
        advantages = torch.full_like(d, sign * 1.5)
        terms = bgpo_terms(ell, torch.zeros_like(d), advantages, n_t=4)
        (grad,) = torch.autograd.grad(terms.sum(), ell)
        assert torch.isfinite(terms).all() and torch.isfinite(grad).all(), (sign, terms, grad)
        assert (grad * sign >= 0).all()  # never the wrong way; down where A < 0 (e^-10000 underflows to 0)
        assert (grad[d > -100] * sign > 0).all()  # and it still pushes, even far above the bound
    ell = d[[0, 1, 6, 7]].clone().requires_grad_(True)  # up to 50 (float32: e^50 ≈ 5e21): the paper's maths
    terms = bgpo_terms(ell, torch.zeros_like(ell), torch.full_like(ell, -1.5), n_t=4)
    (grad,) = torch.autograd.grad(terms.sum(), ell)
    assert torch.equal(terms, torch.exp(ell.detach()) * -1.5 / 4)
    assert torch.equal(grad, torch.exp(ell.detach()) * -1.5 / 4)
