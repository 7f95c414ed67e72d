"""``bgpo check``: BGPO's claims measured on a small random model, written as a tidy CSV.

For each n_t it reports, on one random rollout batch:

* ``value_gap`` / ``grad_gap``: on-policy max |R̂_lb − R̂| and max |∇R̂_lb − ∇R̂| (equivalence; ~1e-16 in
  float64);
* ``bound_slack``: off-policy min over responses of R̂ − R̂_lb (lower bound; must be ≥ 0);
* ``peak_saved_bytes`` and ``seconds`` of one gradient computation for BGPO (one chunk per sample) and for
  the ELBO-based objective with all n_t graphs alive.
"""

from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .diffusion import elbo_terms
from .memory import track_memory
from .methods import accumulate_gradients, build_method
from .objectives import bgpo_bound, elbo_objective
from .testing import perturbed, random_batch, toy_model


@dataclass
class CheckRow:
    """One line of the self-check CSV."""

    n_t: int
    objective: str
    peak_saved_bytes: int
    seconds: float
    value_gap: float
    grad_gap: float
    bound_slack: float


def _flat_grad(model: torch.nn.Module) -> torch.Tensor:
    grads = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    model.zero_grad(set_to_none=True)
    return grads


def run_check(
    n_ts: list[int], *, preset: str = "nano", responses: int = 16, response_length: int = 32, seed: int = 0
) -> list[CheckRow]:
    """Measure equivalence, the lower bound and memory for each n_t (see the module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    model = toy_model(preset, seed=seed)
    old = perturbed(model, 0.02, gen)
    batch = random_batch(model, num_responses=responses, response_length=response_length, generator=gen)
    params = list(model.parameters())
    rows = []
    for n_t in n_ts:
        method = build_method("bgpo", {"n_t": n_t})
        state = method.prepare(model, batch, gen, on_policy=True)
        mask, t = state["mask"].transpose(0, 1), state["t"].T
        start = time.perf_counter()
        with track_memory(exclude=params) as bgpo_mem:
            accumulate_gradients(method, model, batch, state)
        bgpo_time = time.perf_counter() - start
        bgpo_grad = _flat_grad(model)

        start = time.perf_counter()
        with track_memory(exclude=params) as all_mem:
            ell = elbo_terms(model, batch, mask, t, length_normalise=True)
            reference = elbo_objective(ell, ell.detach(), batch.advantages)
            (-reference.mean()).backward()
        all_time = time.perf_counter() - start
        ref_grad = _flat_grad(model)
        with torch.no_grad():
            bound = bgpo_bound(ell, ell.detach(), batch.advantages)
            value_gap = float((bound - reference).abs().max())
            ell_old = elbo_terms(old, batch, mask, t, length_normalise=True)
            slack = float(
                (elbo_objective(ell, ell_old, batch.advantages) - bgpo_bound(ell, ell_old, batch.advantages)).min()
            )
        grad_gap = float((bgpo_grad - ref_grad).abs().max())
        rows.append(CheckRow(n_t, "bgpo", bgpo_mem.peak_saved_bytes, bgpo_time, value_gap, grad_gap, slack))
        rows.append(CheckRow(n_t, "all_graphs", all_mem.peak_saved_bytes, all_time, 0.0, 0.0, 0.0))
    return rows


def write_rows(rows: list[CheckRow], path: Path) -> None:
    """Write the rows as CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)


# ------------------------------------------------------------------------------------ a user's own model
# Relative gradient gap allowed between BGPO's chunked gradient and VRPO-OL's one-backward gradient: both
# are the same sum computed in another order, so they differ by rounding only (a few units of the dtype's
# precision, times the accumulation over n_t chunks).
GRAD_TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4, torch.bfloat16: 5e-2, torch.float16: 5e-2}
MEMORY_RATIO_LIMIT = 1.1  # BGPO's saved-for-backward peak at n_t over its largest sample's alone ("flat")


@dataclass
class ModelCheck:
    """One line of ``bgpo check --model``: a claim, whether it held, and the measured figure."""

    check: str
    passed: bool
    value: float
    limit: float
    detail: str


def check_model(
    model: torch.nn.Module,
    *,
    n_t: int = 8,
    responses: int = 4,
    prompt_length: int = 8,
    response_length: int = 16,
    seed: int = 0,
) -> list[ModelCheck]:
    """Check BGPO's claims on a user's own model before GPU hours are spent on it.

    1. ``bidirectional``: changing the last token changes the logits at position 0 (a causal model's
       would not move);
    2. ``equivalence_value`` / ``equivalence_gradient``: on-policy, BGPO's bound and VRPO-OL's objective
       have the same value and gradient (SPEC §2), both computed through the registered methods on the
       same MC draws (relative gap, tolerance by dtype: :data:`GRAD_TOLERANCE`);
    3. ``memory_flat``: BGPO's peak bytes saved for backward at ``n_t`` over those of its largest MC sample
       run alone (n_t = 1, on the same draws) stay below :data:`MEMORY_RATIO_LIMIT`: the memory of one sample,
       whatever n_t.

    Args:
        model: a :class:`~bgpo.models.DiffusionLM` (on its device, in the dtype to check).
        n_t: the MC sample size of the equivalence and memory checks.
        responses, prompt_length, response_length: the random batch (ordinary tokens, no specials).
        seed: seed of the batch and the MC draws.
    """
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    gen = torch.Generator().manual_seed(seed)
    checks: list[ModelCheck] = []

    ids = random_batch(model, num_responses=1, prompt_length=prompt_length + response_length, generator=gen,
                       left_pad=False).prompt_ids.to(device)  # fmt: skip
    changed = ids.clone()
    changed[0, -1] = ids[0, 0] if ids[0, 0] != ids[0, -1] else ids[0, 1]
    with torch.no_grad():
        moved = float((model(ids)[0, 0].float() - model(changed)[0, 0].float()).abs().max())
    detail = "max |Δ logits at position 0| when the last token changes (0 for a causal model)"
    checks.append(ModelCheck("bidirectional", moved > 0, moved, 0.0, detail))

    batch = random_batch(
        model, num_responses=responses, prompt_length=prompt_length, response_length=response_length,
        generator=gen, left_pad=False,
    ).to(device)  # fmt: skip
    params = [p for p in model.parameters() if p.requires_grad]
    was_training = model.training
    model.train()
    results = {}
    for name in ("bgpo", "vrpo_ol"):
        method = build_method(name, {"n_t": n_t})
        state = method.prepare(model, batch, torch.Generator(device=device).manual_seed(seed + 1), on_policy=True)
        model.zero_grad(set_to_none=True)
        stats = accumulate_gradients(method, model, batch, state)
        grad = torch.cat([p.grad.reshape(-1).float() for p in params if p.grad is not None])
        results[name] = (stats.loss, grad)
        model.zero_grad(set_to_none=True)
    value_gap = abs(results["bgpo"][0] - results["vrpo_ol"][0])
    value_scale = max(abs(results["vrpo_ol"][0]), 1e-12)
    tolerance = GRAD_TOLERANCE.get(dtype, 1e-4)
    gap = value_gap / value_scale
    detail = "on-policy |loss_BGPO − loss_VRPO-OL| / |loss_VRPO-OL|"
    checks.append(ModelCheck("equivalence_value", gap <= tolerance, gap, tolerance, detail))
    grad_gap = float((results["bgpo"][1] - results["vrpo_ol"][1]).abs().max())
    grad_scale = max(float(results["vrpo_ol"][1].abs().max()), 1e-12)
    gap = grad_gap / grad_scale
    detail = "on-policy max |∇BGPO − ∇VRPO-OL| / max |∇VRPO-OL|"
    checks.append(ModelCheck("equivalence_gradient", gap <= tolerance, gap, tolerance, detail))

    # BGPO keeps one MC sample's graph at a time, so its peak is that of its largest single sample. Each
    # sample's cost depends on its mask count (the LM head runs on masked positions only), so the reference
    # is measured on the very same draws: every sample alone (n_t = 1, its own slice of the state).
    method = build_method("bgpo", {"n_t": n_t})
    state = method.prepare(model, batch, torch.Generator(device=device).manual_seed(seed + 2), on_policy=True)
    with track_memory(exclude=params) as memory:
        accumulate_gradients(method, model, batch, state)
    model.zero_grad(set_to_none=True)
    single = build_method("bgpo", {"n_t": 1})
    largest = 0
    for j in range(n_t):
        one = {key: value[:, j : j + 1] for key, value in state.items()}  # (N, 1, ...) slices of (N, n_t, ...)
        with track_memory(exclude=params) as alone:
            accumulate_gradients(single, model, batch, one)
        model.zero_grad(set_to_none=True)
        largest = max(largest, alone.peak_saved_bytes)
    ratio = memory.peak_saved_bytes / max(largest, 1)
    detail = (
        f"BGPO saved for backward: {memory.peak_saved_bytes / 2**20:.1f} MiB at n_t = {n_t}, "
        f"{largest / 2**20:.1f} MiB for its largest sample alone"
    )
    checks.append(ModelCheck("memory_flat", ratio <= MEMORY_RATIO_LIMIT, ratio, MEMORY_RATIO_LIMIT, detail))
    model.train(was_training)
    return checks
