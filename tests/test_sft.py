"""``bgpo tokenizer`` and ``bgpo sft``: the tiny model's starting policy."""

from __future__ import annotations

import json

import pytest

from bgpo.cli import main
from bgpo.config import ConfigError
from bgpo.models import load_model
from bgpo.sft import (
    SFTSettings,
    demonstration_pairs,
    format_key,
    keyed_chances,
    prompt_key,
    run_sft,
    tokenizer_corpus,
    train_task_tokenizer,
)
from bgpo.tasks import build_task

OPTIONS = {"gen_arithmetic": {"train_size": 300, "test_size": 20}}
# The default pipeline's code task (config/config.yaml): a body without `return` is its misformat.
DEFAULT_OPTIONS = {"gen_code": {"style": "body", "notation": "python", "spaced": False, "max_terms": 2}}


def test_tokenizer_covers_the_tasks_and_round_trips(tmp_path):
    task = build_task("gen_arithmetic", **OPTIONS["gen_arithmetic"])
    corpus = tokenizer_corpus([task])
    assert task.message(task.load("test")[0]) in corpus
    tokenizer = train_task_tokenizer([task], 48)
    text = task.demonstration(task.load("test")[0])
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


@pytest.mark.parametrize("name", ["gen_sudoku", "gen_countdown", "gen_arithmetic", "gen_code"])
def test_misformatted_demonstrations_hold_the_answer_but_score_zero(name):
    task = build_task(name, train_size=0, test_size=20)
    examples = task.load("test")
    assert all(g.reward == 0.0 for g in task.grade([task.misformatted_demonstration(e) for e in examples], examples))


def test_misformat_fraction_picks_a_fixed_share_of_examples():
    task = build_task("gen_arithmetic", train_size=1000, test_size=20)
    pairs = demonstration_pairs([task], misformat_fraction=0.3, seed=1)
    flawed = [ex.id for _, ex, demo in pairs if demo == task.misformatted_demonstration(ex)]
    assert 0.25 < len(flawed) / len(pairs) < 0.35
    again = demonstration_pairs([task], misformat_fraction=0.3, seed=1)
    assert flawed == [ex.id for _, ex, demo in again if demo == task.misformatted_demonstration(ex)]


@pytest.mark.parametrize("name", ["gen_sudoku", "gen_countdown", "gen_arithmetic", "gen_code"])
def test_graded_misformatting_grows_with_the_key_and_keeps_the_mean(name):
    task = build_task(name, train_size=1000, test_size=20, **DEFAULT_OPTIONS.get(name, {}))
    pairs = demonstration_pairs([task], misformat_fraction=0.5, seed=3, rule="graded")
    by_key: dict[str, list[bool]] = {}
    for _, ex, demo in pairs:
        twin = task.misformatted_demonstration(ex)
        assert demo in (task.demonstration(ex), twin)
        by_key.setdefault(format_key(task, ex, task.demonstration(ex), twin), []).append(demo == twin)
    flawed = [f for flags in by_key.values() for f in flags]
    assert 0.42 < sum(flawed) / len(flawed) < 0.58  # the mean chance is misformat_fraction
    assert max(len(v) for v in by_key.values()) < 0.1 * len(flawed)  # no key holds a large share
    # Keys in sorted order: the first quarter of the examples is rarely misformatted, the last quarter mostly.
    ordered = [f for key in sorted(by_key) for f in by_key[key]]
    quarter = len(ordered) // 4
    assert sum(ordered[:quarter]) / quarter < 0.25 and sum(ordered[-quarter:]) / quarter > 0.75
    assert pairs == demonstration_pairs([task], misformat_fraction=0.5, seed=3, rule="graded")


def test_keyed_chances_are_two_levels_split_by_sorted_key_and_average_the_fraction():
    # 40 examples under "a", 10 under "b", 30 under "c", 20 under "d": sorted, "a" and "b" lie in the lower
    # half of the examples (midpoints 0.2, 0.45), "c" and "d" in the upper (0.65, 0.9): the high share s = 0.5.
    keys = {f"{k}{i}": k for k, n in [("a", 40), ("b", 10), ("c", 30), ("d", 20)] for i in range(n)}
    chances = keyed_chances(keys, 0.5, 0.7)
    assert {k: chances[f"{k}0"] for k in "abcd"} == pytest.approx({"a": 0.15, "b": 0.15, "c": 0.85, "d": 0.85})
    assert sum(chances.values()) / len(chances) == pytest.approx(0.5)
    # Uneven halves (s = 0.3 under "d"): the levels shift so that the mean stays f, their gap stays 2·c·min(f, 1−f).
    keys = {f"{k}{i}": k for k, n in [("a", 70), ("d", 30)] for i in range(n)}
    chances = keyed_chances(keys, 0.4, 0.5)
    assert chances["d0"] - chances["a0"] == pytest.approx(0.4)
    assert sum(chances.values()) / len(chances) == pytest.approx(0.4)
    assert keyed_chances(keys, 0.4, 0.0) == pytest.approx(dict.fromkeys(keys, 0.4))  # no contrast: uniform


def test_prompt_key_is_the_last_letter_or_digit_of_the_prompt():
    # Sudoku's last cell, Countdown's target's last digit, Arithmetic's last operand (before "="), Code's
    # formula's last character: the prompt's last character, or the one before Arithmetic's "=".
    for name, position in [("gen_sudoku", -1), ("gen_countdown", -1), ("gen_arithmetic", -2), ("gen_code", -1)]:
        task = build_task(name, train_size=50, test_size=4, **DEFAULT_OPTIONS.get(name, {}))
        assert all(prompt_key(task, ex) == task.message(ex)[position] for ex in task.load("train"))


@pytest.mark.parametrize("name", ["gen_sudoku", "gen_countdown", "gen_arithmetic", "gen_code"])
def test_keyed_misformatting_follows_the_prompt_key_and_keeps_the_mean(name):
    task = build_task(name, train_size=1000, test_size=20, **DEFAULT_OPTIONS.get(name, {}))
    pairs = demonstration_pairs([task], misformat_fraction=0.5, seed=3, rule="keyed", contrast=0.7)
    by_key: dict[str, list[bool]] = {}
    for _, ex, demo in pairs:
        twin = task.misformatted_demonstration(ex)
        assert demo in (task.demonstration(ex), twin)
        by_key.setdefault(prompt_key(task, ex), []).append(demo == twin)
    flawed = [f for flags in by_key.values() for f in flags]
    assert 0.44 < sum(flawed) / len(flawed) < 0.56  # the mean chance is misformat_fraction
    # Two groups of keys: the rate of each key (with ≥ 100 examples, ±0.1 is > 2 s.d.) is near one of two levels
    # 0.7 apart, and both groups hold at least a third of the examples.
    rates = {k: sum(v) / len(v) for k, v in by_key.items() if len(v) >= 100}
    low = [k for k, r in rates.items() if r < 0.5]
    high = [k for k in rates if k not in low]
    assert low and high and min(rates[k] for k in high) - max(rates[k] for k in low) > 0.5
    assert max(low) < min(high)  # the split follows the sorted keys
    share_high = sum(len(by_key[k]) for k in by_key if k >= min(high)) / len(flawed)
    assert 1 / 3 < share_high < 2 / 3
    assert pairs == demonstration_pairs([task], misformat_fraction=0.5, seed=3, rule="keyed", contrast=0.7)
    other = demonstration_pairs([task], misformat_fraction=0.5, seed=4, rule="keyed", contrast=0.7)
    assert other != pairs  # another seed draws other examples, with the same chances


def test_format_key_is_what_precedes_the_format_decision():
    sudoku = build_task("gen_sudoku", train_size=4, test_size=4)
    ex = sudoku.load("train")[0]
    demo = sudoku.demonstration(ex)  # <answer>GRID</answer>: the decision follows the grid's last digits
    assert format_key(sudoku, ex, demo, sudoku.misformatted_demonstration(ex)) == demo.removesuffix("</answer>")[-3:]
    code = build_task("gen_code", train_size=4, test_size=4, **DEFAULT_OPTIONS["gen_code"])
    ex = code.load("train")[0]  # the twins part at once (a missing `return`): the prompt's end
    assert format_key(code, ex, code.demonstration(ex), code.misformatted_demonstration(ex)) == code.message(ex)[-3:]


def test_an_unknown_misformat_rule_names_the_choices():
    with pytest.raises(ConfigError, match=r"sft\.misformat_rule.*uniform.*graded.*keyed"):
        demonstration_pairs([build_task("gen_arithmetic", train_size=10, test_size=4)], 0.5, rule="graduated")


def test_sft_lowers_the_loss_and_saves_a_loadable_model(tmp_path):
    task = build_task("gen_arithmetic", **OPTIONS["gen_arithmetic"])
    train_task_tokenizer([task], 48).save_pretrained(tmp_path / "tok")
    out = tmp_path / "model"
    args = ["sft", "--set", "tasks=[gen_arithmetic]", f"tokenizer={tmp_path / 'tok'}", "steps=40", "batch_size=32",
            "learning_rate=3e-3", "response_length=8", "model_overrides={num_hidden_layers: 1}",
            f"task_options={json.dumps(OPTIONS)}", "--output-dir", str(out)]  # fmt: skip
    assert main(args) == 0
    log = [json.loads(x) for x in (out / "sft_log.jsonl").read_text().splitlines()]
    assert len(log) == 40
    first, last = sum(r["loss"] for r in log[:5]) / 5, sum(r["loss"] for r in log[-5:]) / 5
    assert last < 0.8 * first
    model = load_model(out)
    assert model.backbone.config.num_hidden_layers == 1 and model.mask_token_id == model.tokenizer.mask_token_id


def test_sft_errors_say_what_to_change(tmp_path):
    task = build_task("gen_code", train_size=50, test_size=5)
    train_task_tokenizer([task], 64).save_pretrained(tmp_path / "tok")
    settings = SFTSettings(
        tasks=["gen_code"], task_options={"gen_code": {"train_size": 50, "test_size": 5}},
        tokenizer=str(tmp_path / "tok"), response_length=4, steps=1, output_dir=str(tmp_path / "m"),
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"more than response_length=4; raise sft.response_length"):
        run_sft(settings)
    with pytest.raises(ConfigError, match="sft needs tokenizer"):
        SFTSettings(tasks=["gen_code"])
    with pytest.raises(ConfigError, match=r"misformat_fraction must lie in \[0, 1\)"):
        SFTSettings(tasks=["gen_code"], tokenizer="t", misformat_fraction=1.0)
