"""Conformance suite, parametrised over every registered method and every method variant.

A new baseline (one module in ``baselines/`` plus ``configs/methods/<name>.yaml``) is covered here without
writing a test: its config loads, its chunks are finite and reach the parameters, it is deterministic under
a fixed generator, a train step changes every trainable parameter, and its name is the same everywhere.
"""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path

import pytest
import torch

from bgpo.advantages import group_advantages
from bgpo.methods import accumulate_gradients, active_rows, get_method_class, method_names
from bgpo.seeding import generators
from bgpo.testing import perturbed, random_batch
from bgpo.variants import load_variant, variant_names

ROOT = Path(__file__).resolve().parents[1]
METHODS = [name for name in method_names() if not name.startswith("_")]
VARIANTS = variant_names()


def _batch(model, gen):
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.0, 1.0, 1.0], dtype=torch.float64)
    batch = random_batch(model, num_responses=8, generator=gen, advantages=group_advantages(rewards, 4))
    batch.group_size = 4
    batch.eos_token_id = model.eos_token_id
    return batch


def _setup(variant, model, gen):
    """A batch, an old policy near ``model``, the variant's method and its reference policy (if it needs one)."""
    batch = _batch(model, gen)
    old = perturbed(model, 0.01, gen)
    method = load_variant(variant).build()
    reference = perturbed(model, 0.01, gen) if method.needs_reference else None
    return batch, old, method, reference


def _gradients(variant, model, seed):
    """One off-policy update of ``variant`` from a fixed seed; returns the chunk losses and the gradients."""
    gen = torch.Generator().manual_seed(seed)
    batch, old, method, reference = _setup(variant, model, gen)
    state = method.prepare(old, batch, gen, on_policy=False, reference=reference)
    losses = []

    def backward(loss):
        losses.append(loss.detach())
        loss.backward()

    model.zero_grad(set_to_none=True)
    # no_sync makes the driver check that chunk_count() matches the chunks the method yields.
    accumulate_gradients(
        method, model, batch, state, micro_batch_size=3, backward=backward, no_sync=contextlib.nullcontext
    )
    grads = [p.grad.clone() if p.grad is not None else None for p in model.parameters()]
    return losses, grads


@pytest.mark.parametrize("name", METHODS)
def test_name_is_the_same_in_registry_module_config_and_docs(name):
    cls = get_method_class(name)
    assert cls.name == name
    assert cls.__module__.rsplit(".", 1)[-1] == name, "the module file must carry the registry name"
    module = importlib.import_module(cls.__module__)
    assert module.__doc__ and len(module.__doc__) > 200, "the module docstring says what it implements and omits"
    assert name in VARIANTS, f"configs/methods/{name}.yaml is missing"
    assert load_variant(name).method == name
    assert f"`{name}`" in (ROOT / "README.md").read_text(), f"README.md does not mention `{name}`"


@pytest.mark.parametrize("variant", VARIANTS)
def test_config_loads_and_every_value_is_documented(variant):
    loaded = load_variant(variant)
    assert loaded.method in METHODS
    text = loaded.path.read_text()
    for key in loaded.config:
        line = next(line for line in text.splitlines() if line.strip().startswith(f"{key}:"))
        assert "#" in line, f"{loaded.path.name}: '{key}' has no comment saying where its value comes from"


@pytest.mark.parametrize("variant", VARIANTS)
def test_chunks_are_finite_and_reach_the_parameters(variant, model):
    losses, grads = _gradients(variant, model, seed=3)
    assert losses and all(torch.isfinite(loss) for loss in losses)
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_deterministic_under_a_fixed_generator(variant, model):
    first = _gradients(variant, model, seed=5)
    second = _gradients(variant, model, seed=5)
    other = _gradients(variant, model, seed=6)
    # Exact by construction: the same computation on the same tensors in one process, draws from equal generators.
    assert all(torch.equal(a, b) for a, b in zip(first[1], second[1], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first[1], other[1], strict=True))


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_train_step_changes_every_trainable_parameter(variant, model):
    before = [p.detach().clone() for p in model.parameters()]
    _gradients(variant, model, seed=7)
    torch.optim.SGD(model.parameters(), lr=1.0).step()  # no weight decay: only gradients move parameters
    unchanged = [
        name
        for (name, p), old in zip(model.named_parameters(), before, strict=True)
        if p.requires_grad and torch.equal(p, old)  # exact on purpose: any change at all counts as moved
    ]
    assert not unchanged, f"{variant} left these parameters unchanged: {unchanged}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_preparing_only_the_rows_that_run_changes_nothing(variant, model):
    """The trainer prepares only the rows of ``active_rows`` (per-row generators): same state, same gradient."""
    batch, old, method, reference = _setup(variant, model, torch.Generator().manual_seed(11))
    batch.advantages[4:] = 0.0  # a whole group without signal
    rows = active_rows(method, batch)
    if rows.numel() == batch.num_responses:
        pytest.skip(f"{variant}: every response can change its loss, so the trainer prepares the whole batch")
    full = method.prepare(old, batch, generators((0, "prepare"), range(8)), on_policy=False, reference=reference)
    part = method.prepare(
        old, batch.select(rows), generators((0, "prepare"), rows.tolist()), on_policy=False, reference=reference
    )
    assert full.keys() == part.keys()
    for key in full:
        torch.testing.assert_close(part[key], full[key][rows], rtol=1e-12, atol=1e-12, msg=key)
    grads = []
    for state in ({k: v[rows] for k, v in full.items()}, part):
        model.zero_grad(set_to_none=True)
        accumulate_gradients(method, model, batch.select(rows), state, normaliser=8)
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
