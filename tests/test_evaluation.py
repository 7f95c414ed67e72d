"""``bgpo evaluate``: prompts → sampler → cut at EOS → grade → metrics, on a scripted model and a real one."""

from __future__ import annotations

import csv
import json

import torch
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
    assert set(frame.metric) == {"cell_accuracy", "accuracy", "mean_reward"}
    assert ((frame.value >= 0) & (frame.value <= 1)).all() and (frame.n == 6).all()
    rows = [json.loads(line) for line in (tmp_path / "gen_sudoku.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {"id", "prompt", "completion", "reward", "cells_correct"} <= set(rows[0])
    again = run_evaluation(model, tasks, tmp_path / "again", config, limit=6, batch_size=3, seed=3)
    first = [json.loads(x)["completion"] for x in (tmp_path / "gen_sudoku.jsonl").read_text().splitlines()]
    second = [json.loads(x)["completion"] for x in (tmp_path / "again" / "gen_sudoku.jsonl").read_text().splitlines()]
    assert first == second  # per-example generators: the batch size does not change sampled answers
    assert list(again.value) == list(frame.value)


def test_evaluate_command(model, tmp_path, capsys):
    model.save_pretrained(tmp_path / "m")
    out = str(tmp_path / "out")
    args = ["evaluate", "--model", str(tmp_path / "m"), "--tasks", "gen_arithmetic", "--limit", "4",
            "--gen-length", "8", "--block-length", "4", "--out-dir", out, "--device", "cpu"]  # fmt: skip
    assert main(args) == 0
    metrics = list(csv.DictReader((tmp_path / "out" / "metrics.csv").open()))
    assert {r["metric"] for r in metrics} == {"accuracy", "mean_reward"} and metrics[0]["steps"] == "8"


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
