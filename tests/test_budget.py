"""The equal-memory budget (bgpo.budget): each method's n_t is the largest that fits, by measurement."""

from __future__ import annotations

import pytest

from bgpo.budget import MIB, fit_budget, largest_fitting
from bgpo.config import ConfigError
from bgpo.models import build_model
from bgpo.sft import train_task_tokenizer
from bgpo.tasks import build_task

ARITHMETIC = {"train_size": 32, "test_size": 8, "operators": "+-"}


def test_the_largest_fitting_candidate_is_chosen_and_larger_ones_are_not_measured():
    calls = []

    def linear(n):  # VRPO-OL: every sample's graph stays alive
        calls.append(n)
        return 10 * n

    chosen, measured = largest_fitting([16, 1, 2, 4, 8], linear, budget_bytes=45)
    assert chosen == 4
    assert measured == [(1, 10), (2, 20), (4, 40), (8, 80), (16, 160)]
    assert calls == [16, 1, 2, 4, 8]  # the largest first; none after the first that does not fit


def test_a_flat_memory_gets_the_largest_candidate_from_one_measurement():
    calls = []

    def flat(n):  # BGPO: one sample's graph at a time
        calls.append(n)
        return 10

    assert largest_fitting([1, 2, 4, 8, 16], flat, budget_bytes=10) == (16, [(16, 10)])
    assert calls == [16]


def test_a_budget_below_one_sample_is_an_error_naming_the_setting():
    with pytest.raises(ValueError, match=r"below what n_t = 1 needs \(2\.0 MiB\).*memory_budget\.saved_mib"):
        largest_fitting([1, 2], lambda n: 2 * MIB * n, budget_bytes=MIB)


@pytest.fixture(scope="module")
def arithmetic_model():
    tokenizer = train_task_tokenizer([build_task("gen_arithmetic", **ARITHMETIC)], 64)
    return build_model("nano", tokenizer, num_hidden_layers=1)


def _fit(model, budget_mib, variants):
    return fit_budget(
        model=model, tasks=["gen_arithmetic"], task_options={"gen_arithmetic": ARITHMETIC}, data_dir=None,
        variants=variants, budget_mib=budget_mib, candidates=[1, 2, 4], responses=4, micro_batch_size=4,
        response_length=8, block_length=8, rollout_steps=4,
    )  # fmt: skip


def test_vrpo_ol_memory_grows_with_n_t_and_bgpo_memory_does_not(arithmetic_model):
    variants = {"vrpo_ol": {"method": "vrpo_ol", "n_t": 4}, "bgpo": {"method": "bgpo", "n_t": 4}}
    _, prompt_length, points = _fit(arithmetic_model, 1e6, variants)
    saved = {(p.variant, p.n_t): p.peak_saved_bytes for p in points if p.variant == "bgpo"}
    assert list(saved) == [("bgpo", 4)]  # fits at the largest candidate: one measurement
    # A budget between one and two VRPO-OL samples: VRPO-OL gets 1, BGPO the largest candidate.
    one = saved[("bgpo", 4)]
    chosen, _, points = _fit(arithmetic_model, 1.5 * one / MIB, variants)
    assert chosen == {"vrpo_ol": 1, "bgpo": 4}
    vrpo = {p.n_t: p.peak_saved_bytes for p in points if p.variant == "vrpo_ol"}
    assert vrpo[2] == pytest.approx(2 * vrpo[1], rel=0.05) and vrpo[4] == pytest.approx(4 * vrpo[1], rel=0.05)
    assert vrpo[1] == pytest.approx(one, rel=0.05)  # one sample costs the same in both
    tokens = arithmetic_model.tokenizer("a", add_special_tokens=False)["input_ids"]
    assert prompt_length > len(tokens)  # the longest rendered training prompt, not a placeholder


def test_a_method_without_n_t_cannot_be_budgeted(arithmetic_model):
    with pytest.raises(ConfigError, match=r"diffu_grpo.*no n_t"):
        _fit(arithmetic_model, 100, {"diffu_grpo": {"method": "diffu_grpo"}})
