"""``bgpo grade`` on hand-written files, its errors, and the evaluation protocols that label every result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bgpo.cli import main
from bgpo.config import ConfigError
from bgpo.protocols import EvalSettings, get_protocol, resolve_settings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"benchmark files not found at {DATA}")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_grade_scores_d1_rows_and_writes_extractions(tmp_path, capsys):
    first, second = {"Puzzle": "3102200002100320", "Solution": "3142243142131324"}, {"Puzzle": "0140432014020000"}
    rows = [
        {**first, "completion": "<answer>\n3142\n2431\n4213\n1324"},
        {**first, "completion": "<answer>3142243142131320"},
        {**second, "Solution": "2143432114323214", "completion": "I give up."},
    ]
    out = tmp_path / "scored.jsonl"
    assert main(["grade", "sudoku", str(write_jsonl(tmp_path / "s.jsonl", rows)), "--out", str(out)]) == 0
    summary = last_json(capsys)
    # Cells pooled over the puzzles' blanks (8 each): (8 + 7 + 0) / 24, not the mean of 1, 7/8 and 0.
    assert summary["task"] == "sudoku" and summary["n"] == 3 and summary["metric"] == "cell_accuracy"
    assert summary["cell_accuracy"] == pytest.approx(15 / 24) and summary["accuracy"] == pytest.approx(1 / 3)
    assert summary["mean_reward"] == pytest.approx((1 + 7 / 8) / 3)  # the per-puzzle mean, for comparison
    assert summary["failures"] == {"ok": 1, "wrong_cells": 1, "no_answer": 1}
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["extracted"] for r in scored] == ["3142243142131324", "3142243142131320", None]
    assert [r["failure"] for r in scored] == ["ok", "wrong_cells", "no_answer"]
    assert scored[1]["reward"] == pytest.approx(7 / 8) and scored[0]["Puzzle"] == rows[0]["Puzzle"]


def test_grade_reads_gsm8k_and_math500_rows(tmp_path, capsys):
    gsm = [
        {"question": "q", "answer": "9 * 2 = 18\n#### 18", "completion": "She makes \\boxed{18 dollars}."},
        {"question": "q", "answer": "#### 1,200", "completion": "The total is \\boxed{1200"},
        {"question": "q", "answer": "#### 5", "completion": "\\boxed{6}"},
    ]
    assert main(["grade", "gsm8k", str(write_jsonl(tmp_path / "g.jsonl", gsm))]) == 0
    assert last_json(capsys)["accuracy"] == pytest.approx(2 / 3)
    math = [{"problem": "p", "answer": "\\frac{1}{2}", "completion": "so $boxed{0.5}$"}]
    assert main(["grade", "math500", str(write_jsonl(tmp_path / "m.jsonl", math)), "--protocol", "d1"]) == 0
    summary = last_json(capsys)
    assert summary["accuracy"] == 1.0 and summary["protocol"] == "d1"


@needs_data
def test_grade_runs_code_in_the_sandbox(tmp_path, capsys):
    row = json.loads(next(line for line in (DATA / "mbpp" / "mbpp.jsonl").open() if '"task_id": 11,' in line))
    rows = [
        {**row, "completion": f"{row['code']}\n[DONE]"},
        {**row, "completion": "def remove_Occ(s, ch):\n    return s"},
    ]
    path = write_jsonl(tmp_path / "c.jsonl", rows)
    assert main(["grade", "mbpp", str(path), "--out", str(tmp_path / "o.jsonl")]) == 0
    summary = last_json(capsys)
    assert summary["accuracy"] == 0.5 and summary["failures"] == {"ok": 1, "failed": 1}


def test_bad_lines_name_the_file_and_line(tmp_path, capsys):
    good = {"input": "30,100,93", "output": "23", "completion": "<answer>30-100+93</answer>"}
    cases = {
        "json": [json.dumps(good), '{"input": "1,2,3", "output": '],
        "completion": [json.dumps(good), json.dumps({"input": "1,2,3", "output": "6"})],
        "row": [json.dumps(good), json.dumps({"input": "1,2", "output": "3", "completion": "x"})],
    }
    messages = {"json": "invalid JSON", "completion": "missing field 'completion'", "row": "expected 3 numbers"}
    for name, lines in cases.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_text("\n".join(lines) + "\n")
        assert main(["grade", "countdown", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"{path}:2: {messages[name]}" in err
    assert main(["grade", "countdown", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_unknown_or_unfitting_protocols_are_errors(tmp_path, capsys):
    path = write_jsonl(tmp_path / "x.jsonl", [{"question": "1+1", "answer": "2", "completion": "\\boxed{2}"}])
    assert main(["grade", "gen_arithmetic", str(path), "--protocol", "d2"]) == 2
    assert "unknown protocol 'd2'" in capsys.readouterr().err
    assert main(["grade", "gen_arithmetic", str(path), "--protocol", "bgpo"]) == 2
    assert "protocol bgpo does not cover task 'gen_arithmetic'" in capsys.readouterr().err
    assert main(["grade", "gen_arithmetic", str(path)]) == 0 and last_json(capsys)["accuracy"] == 1.0


# ----------------------------------------------------------------------------------------------- protocols
def test_protocols_pin_the_papers_settings():
    bgpo, d1 = get_protocol("bgpo"), get_protocol("d1")
    assert get_protocol("custom") is None
    assert bgpo.settings("math500") == EvalSettings(512, 32, 512, 0.0)  # Table 5 eval: length = steps, block 32
    assert bgpo.settings("countdown") == EvalSettings(256, 32, 256, 0.0)
    assert bgpo.settings("sudoku") == EvalSettings(256, 32, 256, 0.0, limit=256, random_subset=True)
    assert bgpo.settings("gsm8k", 2048).steps == 2048  # Table 6's lengths
    assert d1.settings("gsm8k", 512) == EvalSettings(512, 32, 256, 0.0)  # d1: steps = length / 2
    assert d1.settings("countdown", 128).steps == 64
    assert bgpo.metric("cell_accuracy") == d1.metric("cell_accuracy") == "cell_accuracy"
    assert bgpo.metric("accuracy") == "accuracy"
    with pytest.raises(ConfigError, match="pass --gen-length with one of them"):
        d1.settings("gsm8k")
    with pytest.raises(ConfigError, match="evaluates gsm8k at 128, 256, 512 tokens, not 1024"):
        d1.settings("gsm8k", 1024)
    with pytest.raises(ConfigError, match="does not cover task 'humaneval'"):
        d1.settings("humaneval", 256)


def test_options_that_contradict_a_protocol_are_errors():
    defaults = EvalSettings(256, 32, 256)
    assert resolve_settings("custom", "gsm8k", {"gen_length": 64}, defaults) == EvalSettings(64, 32, 64)
    assert resolve_settings("custom", "gsm8k", {"steps": 8}, defaults) == EvalSettings(256, 32, 8)
    pinned = resolve_settings("bgpo", "gsm8k", {"gen_length": 512, "block_length": 32, "steps": 512}, defaults)
    assert pinned == EvalSettings(512, 32, 512)
    with pytest.raises(ConfigError, match="--steps 256 differs from protocol bgpo's 512 for gsm8k"):
        resolve_settings("bgpo", "gsm8k", {"steps": 256}, defaults)
    with pytest.raises(ConfigError, match="--limit 10 differs from protocol d1's 256 for sudoku"):
        resolve_settings("d1", "sudoku", {"gen_length": 256, "limit": 10}, defaults)
    # Named protocols decode exactly: a KV cache or a confidence threshold is refused, saying why.
    assert resolve_settings("d1", "gsm8k", {"gen_length": 256, "cache": "none"}, defaults).cache == "none"
    for option, value in (("cache", "dual"), ("threshold", 0.9), ("remasking", "random")):
        with pytest.raises(ConfigError, match=rf"--{option} {value} differs from protocol d1's .* decodes exactly"):
            resolve_settings("d1", "gsm8k", {"gen_length": 256, option: value}, defaults)
    fast = resolve_settings("custom", "gsm8k", {"cache": "prefix", "threshold": 0.9}, defaults)
    assert (fast.cache, fast.threshold) == ("prefix", 0.9)
    assert resolve_settings("custom", "gsm8k", {"remasking": "random"}, defaults).remasking == "random"
    assert resolve_settings("bgpo", "gsm8k", {"gen_length": 512}, defaults).remasking == "low_confidence"


def test_evaluate_checks_the_protocol_before_loading_the_model(tmp_path, capsys):
    args = ["evaluate", "--model", str(tmp_path / "no-model"), "--tasks", "gsm8k", "--protocol", "bgpo",
            "--temperature", "0.6", "--out-dir", str(tmp_path)]  # fmt: skip
    assert main(args) == 2
    assert "--temperature 0.6 differs from protocol bgpo's 0.0 for gsm8k" in capsys.readouterr().err
