"""``bgpo evaluate``: prompts → sampler → cut at EOS → grade → metrics, on a scripted model and a real one;
``bgpo grade`` on evaluate's JSONL gives the same scores."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
import transformers
from torch import nn

from bgpo.cli import main
from bgpo.evaluation import decode_responses, evaluate_task, run_evaluation
from bgpo.sampler import SamplerConfig
from bgpo.sandbox import bwrap_available
from bgpo.tasks import build_task


class Scripted(nn.Module):
    """Answers every prompt with the same text, then EOS: its greedy decoding is known in advance."""

    def __init__(self, tokenizer, text: str, length: int) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.mask_token_id, self.eos_token_id = tokenizer.mask_token_id, tokenizer.eos_token_id
        self.pad_token_id, self.eot_token_id = tokenizer.pad_token_id, None
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        self.script = torch.tensor(ids + [self.eos_token_id] * (length - len(ids)))
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None, logits_to_keep=0):
        n, s = input_ids.shape
        logits = torch.zeros(n, s, len(self.tokenizer))
        start = s - self.script.numel()
        logits[:, start:].scatter_(-1, self.script[None, :, None].expand(n, -1, 1), 10.0)
        return logits[:, logits_to_keep] if isinstance(logits_to_keep, torch.Tensor) else logits


def test_scripted_answers_are_decoded_cut_and_graded(tokenizer):
    task = build_task("gen_arithmetic", train_size=0, test_size=60)
    examples = task.load("test")
    model = Scripted(tokenizer, "\\boxed{16}", length=16)
    config = SamplerConfig(gen_length=16, block_length=8, steps=16)
    records, metrics = evaluate_task(model, task, examples, config, batch_size=7)
    assert all(r["completion"] == "\\boxed{16}" for r in records)  # cut at the first EOS
    want = sum(e.answer == "16" for e in examples) / len(examples)
    assert want > 0 and metrics["accuracy"] == want and metrics["mean_reward"] == want


def test_decode_cuts_at_eos_and_eot(model):
    eos, eot = model.eos_token_id, model.eot_token_id
    ids = model.tokenizer("12", add_special_tokens=False)["input_ids"]
    responses = torch.tensor([[*ids, eos, 7, 7], [*ids, eot, eos, 7], [*ids, 7, 7, 7]])
    texts = decode_responses(model, responses)
    assert texts[0] == texts[1] == "12" and texts[2].startswith("12")


def test_run_evaluation_writes_jsonl_and_tidy_metrics(model, tmp_path):
    tasks = [
        build_task("gen_sudoku", train_size=0, test_size=10),
        build_task("gen_countdown", train_size=0, test_size=10),
    ]
    config = SamplerConfig(gen_length=8, block_length=4, steps=8, temperature=0.7)
    frame = run_evaluation(model, tasks, tmp_path, config, limit=6, batch_size=4, seed=3, extra={"model": "toy"})
    assert set(frame.metric) == {"cell_accuracy", "accuracy", "mean_reward", "format_reward"}
    assert (frame.protocol == "custom").all()
    assert ((frame.value >= 0) & (frame.value <= 1)).all() and (frame.n == 6).all()
    rows = [json.loads(line) for line in (tmp_path / "gen_sudoku.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {"id", "model_input", "completion", "reward", "cells_correct"} <= set(rows[0])
    assert {"question", "answer", "meta", "extracted", "failure", "format_reward"} <= set(rows[0])
    again = run_evaluation(model, tasks, tmp_path / "again", config, limit=6, batch_size=3, seed=3)
    first = [json.loads(x)["completion"] for x in (tmp_path / "gen_sudoku.jsonl").read_text().splitlines()]
    second = [json.loads(x)["completion"] for x in (tmp_path / "again" / "gen_sudoku.jsonl").read_text().splitlines()]
    assert first == second  # per-example generators: the batch size does not change sampled answers
    assert list(again.value) == list(frame.value)
    assert (frame["cache"] == "none").all() and frame["threshold"].isna().all()  # exact decoding, recorded
    assert (frame["remasking"] == "low_confidence").all()
    fast = replace(config, cache="dual", threshold=0.9)
    approximate = run_evaluation(model, tasks[:1], tmp_path / "fast", fast, limit=6, batch_size=4, seed=3)
    assert (approximate["cache"] == "dual").all() and (approximate["threshold"] == 0.9).all()


def test_evaluate_command(model, tmp_path, capsys):
    model.save_pretrained(tmp_path / "m")
    out = str(tmp_path / "out")
    args = ["evaluate", "--model", str(tmp_path / "m"), "--tasks", "gen_arithmetic", "--limit", "4",
            "--gen-length", "8", "--block-length", "4", "--out-dir", out, "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    metrics = list(csv.DictReader((tmp_path / "out" / "metrics.csv").open()))
    assert {r["metric"] for r in metrics} == {"accuracy", "mean_reward", "format_reward"}
    assert metrics[0]["steps"] == "8" and metrics[0]["protocol"] == "custom"
    # Where it ran: two machines' results must be told apart (floating-point reductions differ across CPUs).
    assert metrics[0]["cpu"] and int(metrics[0]["threads"]) >= 1
    assert metrics[0]["torch"] == torch.__version__ and metrics[0]["transformers"] == transformers.__version__


def test_metrics_record_the_sandbox_that_graded_code(model, tmp_path):
    tasks = [build_task("gen_code", train_size=0, test_size=4), build_task("gen_arithmetic", train_size=0, test_size=4)]
    config = SamplerConfig(gen_length=8, block_length=4, steps=8)
    frame = run_evaluation(model, tasks, tmp_path, config, batch_size=4)
    assert set(frame[frame.task == "gen_code"].sandbox) == {
        "bwrap" if bwrap_available() else "rlimit-unsafe"
    }  # conftest
    assert frame[frame.task == "gen_arithmetic"].sandbox.isna().all()  # no code, no sandbox
    unsafe = build_task("gen_code", train_size=0, test_size=4, backend="rlimit-unsafe")  # the opt-in is recorded
    again = run_evaluation(model, [unsafe], tmp_path / "unsafe", config, batch_size=4)
    assert set(again.sandbox) == {"rlimit-unsafe"}


# ---------------------------------------------------------------------------------- evaluate → JSONL → grade
def _grade_summary(capsys, task: str, path: Path, *extra: str) -> dict:
    """Run ``bgpo grade`` and return its last stdout line (the JSON summary)."""
    capsys.readouterr()
    assert main(["grade", task, str(path), *extra]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_evaluate_command_then_grade_gives_identical_scores(model, tmp_path, capsys):
    model.save_pretrained(tmp_path / "m")
    out = tmp_path / "out"
    args = ["evaluate", "--model", str(tmp_path / "m"), "--tasks", "gen_sudoku", "gen_countdown", "--limit", "12",
            "--gen-length", "16", "--block-length", "8", "--temperature", "0.9", "--out-dir", str(out),
            "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    metrics = pd.read_csv(out / "metrics.csv")
    for task in ("gen_sudoku", "gen_countdown"):
        summary = _grade_summary(capsys, task, out / f"{task}.jsonl", "--out", str(tmp_path / f"{task}.scored.jsonl"))
        mine = metrics[metrics.task == task].set_index("metric").value.to_dict()
        assert summary["n"] == 12 and {k: summary[k] for k in mine} == mine  # exactly, every metric
        scored = (tmp_path / f"{task}.scored.jsonl").read_text().splitlines()
        assert scored == (out / f"{task}.jsonl").read_text().splitlines()  # same rows, same grades


DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(not DATA.is_dir(), reason=f"benchmark files not found at {DATA}")
def test_real_benchmarks_round_trip_through_their_own_row_format(tokenizer, tmp_path, capsys):
    # One scripted answer for every prompt: right for some rows, partly right (Sudoku) or wrong for the others.
    cases = {
        "countdown": ("<reasoning>30-100+93</reasoning>\n<answer>\\boxed{30 - 100 + 93}", ["input", "output"]),
        "sudoku": ("<answer>\n3142\n2431\n4213\n1324", ["Puzzle", "Solution"]),
    }
    for task_name, (text, fields) in cases.items():
        model = Scripted(tokenizer, text, length=64)
        task = build_task(task_name, data_dir=DATA)
        out = tmp_path / task_name
        frame = run_evaluation(model, [task], out, SamplerConfig(gen_length=64, block_length=64, steps=64),
                               limit=40, random_subset=True, batch_size=40, seed=1)  # fmt: skip
        rows = [json.loads(line) for line in (out / f"{task_name}.jsonl").read_text().splitlines()]
        assert set(fields) <= set(rows[0]) and rows[0]["completion"] == text
        summary = _grade_summary(capsys, task_name, out / f"{task_name}.jsonl")
        mine = frame.set_index("metric").value.to_dict()
        assert {k: summary[k] for k in mine} == mine
        assert 0 < summary[task.metric] < 1  # some right, some wrong: the comparison means something
