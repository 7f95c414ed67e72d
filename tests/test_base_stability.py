"""A cheap guard against the bistable SFT base (issue 21): the keyed recipe lands in the same regime whatever
the thread count.

With ``misformat_rule: uniform`` the format decision is a coin the model cannot read, and greedy decoding
turns it into all-or-nothing: a base formats about 0% or 100% of its answers, and the last bit of a reduction
(a seed, a thread count, a CPU) decides which. With ``keyed`` the model reads the chance off its prompt's last
letter or digit (``bgpo.sft.prompt_key``), so greedy decoding formats the low-chance prompts and misformats the
high-chance ones: a format share near ½ that a perturbation cannot flip. A short SFT of the arithmetic task
(the fastest) at one and at two OMP threads, each in its own process (torch's thread count is process-wide),
must give a base that formats most low-key prompts and few high-key ones, with format shares close together.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bgpo.sft import keyed_chances, prompt_key, train_task_tokenizer
from bgpo.tasks import build_task

TASK = "gen_arithmetic"
OPTIONS = {TASK: {"operators": "+-", "train_size": 2000, "test_size": 256}}  # the pipeline's arithmetic task
# A short SFT (~30 s CPU a thread count, the pipeline's batch and rate): enough to learn the format and the key,
# not the sums. Measured (seed 0): 300 steps, format share 1.0 on low-key and 0.006 on high-key prompts at 1 and
# at 2 threads alike; 220 steps, 0.47 and 0.20 (the key half learnt); 150 steps with batch 32, 0.94 and 0.99.
SFT = {"steps": 300, "batch_size": 64, "learning_rate": 2e-3, "response_length": 8, "misformat_fraction": 0.5}
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def _base_format(tmp: Path, tokenizer: Path, threads: int, rule: str, seed: int = 0) -> dict[str, float]:
    """Train a short base in a subprocess with ``threads`` OMP threads and decode the test prompts greedily;
    returns its format share over all prompts and over the low- and high-chance keys' prompts."""
    env = {**os.environ, **OFFLINE, "OMP_NUM_THREADS": str(threads)}
    model, evals = tmp / f"{rule}_{threads}_{seed}", tmp / f"eval_{rule}_{threads}_{seed}"
    sets = [f"tasks=[{TASK}]", f"tokenizer={tokenizer}", f"task_options={json.dumps(OPTIONS)}",
            f"misformat_rule={rule}", f"seed={seed}", *(f"{k}={v}" for k, v in SFT.items())]  # fmt: skip
    evaluate = ["--model", str(model), "--tasks", TASK, "--task-options", json.dumps(OPTIONS), "--gen-length",
                "8", "--block-length", "8", "--steps", "8", "--batch-size", "256", "--device", "cpu",
                "--out-dir", str(evals)]  # fmt: skip
    # One process trains and evaluates: one torch start-up (~5 s) per thread count, not two.
    script = (
        "import sys; from bgpo.cli import main; "
        f"sys.exit(main(['sft', '--set', *{sets!r}, '--output-dir', {str(model)!r}])"
        f" or main(['evaluate', *{evaluate!r}]))"
    )
    subprocess.run([sys.executable, "-c", script], env=env, check=True, capture_output=True)  # fmt: skip
    task = build_task(TASK, **OPTIONS[TASK])
    train = task.load("train")
    chances = keyed_chances({ex.id: prompt_key(task, ex) for ex in train}, 0.5, 0.7)
    high = {prompt_key(task, ex) for ex in train if chances[ex.id] > 0.5}
    examples = {ex.id: ex for ex in task.load("test")}
    groups: dict[str, list[float]] = {"all": [], "low": [], "high": []}
    with open(evals / f"{TASK}.jsonl") as f:
        for record in map(json.loads, f):
            key = prompt_key(task, examples[record["id"]])
            groups["all"].append(record["format_reward"])
            groups["high" if key in high else "low"].append(record["format_reward"])
    return {name: sum(v) / len(v) for name, v in groups.items()}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small tokenizer of the arithmetic task."""
    path = tmp_path_factory.mktemp("tok")
    train_task_tokenizer([build_task(TASK, **OPTIONS[TASK])], 48).save_pretrained(path)
    return path


def test_keyed_base_is_in_the_same_regime_at_one_and_two_threads(tmp_path: Path, tokenizer: Path) -> None:
    one, two = (_base_format(tmp_path, tokenizer, threads, "keyed") for threads in (1, 2))
    for shares in (one, two):
        # The key is learnt: most low-key prompts formatted, few high-key ones. A bistable base fails one side:
        # the uniform rule, with the same SFT, formats none (measured: 0.0 on both).
        assert shares["low"] > 0.75 and shares["high"] < 0.25, shares
    # Measured: identical at 1 and 2 threads here (0.395). 0.1 leaves room for another CPU's rounding moving the
    # prompts nearest the decision, and is far below the uniform rule's jumps (0 ↔ 0.6-0.9 of the prompts).
    assert abs(one["all"] - two["all"]) < 0.1, (one, two)
