"""The ``bgpo`` command line."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from bgpo.cli import main


def test_check_writes_a_csv_and_passes(tmp_path, capsys):
    out = tmp_path / "check.csv"
    code = main(["check", "--n-t", "1", "4", "--responses", "4", "--length", "8", "--out", str(out)])
    assert code == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["n_t"], r["objective"]) for r in rows] == [
        ("1", "bgpo"),
        ("1", "all_graphs"),
        ("4", "bgpo"),
        ("4", "all_graphs"),
    ]
    bgpo4 = next(r for r in rows if r["n_t"] == "4" and r["objective"] == "bgpo")
    all4 = next(r for r in rows if r["n_t"] == "4" and r["objective"] == "all_graphs")
    assert float(bgpo4["grad_gap"]) < 1e-12 and float(bgpo4["bound_slack"]) > 0
    assert int(all4["peak_saved_bytes"]) > 3 * int(bgpo4["peak_saved_bytes"])
    assert "wrote" in capsys.readouterr().out


def test_model_build_then_info(tmp_path, capsys):
    assert main(["model", "build", "--preset", "nano", "--out", str(tmp_path / "m")]) == 0
    assert main(["model", "info", str(tmp_path / "m")]) == 0
    assert '"mask_token_id": 3' in capsys.readouterr().out


def test_methods_lists_bgpo(capsys):
    assert main(["methods"]) == 0
    assert "\nbgpo: {" in "\n" + capsys.readouterr().out


def test_console_help_lists_the_subcommands():
    out = subprocess.run([sys.executable, "-m", "bgpo.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("check", "methods", "model"):
        assert command in out.stdout


def test_then_runs_commands_in_order_in_one_process(tmp_path, capsys):
    model = tmp_path / "m"
    assert main(["model", "build", "--preset", "nano", "--out", str(model), "--then", "model", "info", str(model)]) == 0
    out = capsys.readouterr().out
    assert '"mask_token_id": 3' in out  # the second command read what the first wrote


def test_then_parses_every_command_before_running_any(tmp_path, capsys):
    model = tmp_path / "m"
    with pytest.raises(SystemExit) as exit_info:
        main(["model", "build", "--preset", "nano", "--out", str(model), "--then", "model", "inf", str(model)])
    assert exit_info.value.code == 2 and "invalid choice: 'inf'" in capsys.readouterr().err
    assert not model.exists()  # the typo in the second command stopped the first from running


def test_then_stops_at_the_first_failing_command(tmp_path, capsys):
    missing = tmp_path / "absent.yaml"
    code = main(["train", "--config", str(missing), "--then", "methods"])
    captured = capsys.readouterr()
    assert code == 2 and "no such run config file" in captured.err
    assert "bgpo: {" not in captured.out  # `methods` did not run


def test_then_needs_a_command_on_both_sides():
    with pytest.raises(SystemExit, match="--then needs a command on both sides"):
        main(["methods", "--then"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--batch-size", "0"], "argument --batch-size: must be ≥ 1, got 0"),
        (["--limit", "0"], "argument --limit: must be ≥ 1, got 0"),
        (["--meta", "foo"], "--meta takes KEY=VALUE items, got 'foo'"),
        (["--task-options", '{"gen_sudoku": 5}'], "--task-options.gen_sudoku must be a mapping"),
        (["--task-options", "[1]"], "--task-options must be a JSON object of task names"),
    ],
)
def test_evaluate_arguments_are_checked_before_the_model_loads(tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.setattr("bgpo.models.load_model", lambda *a, **k: pytest.fail("the model was loaded first"))
    command = ["evaluate", "--model", str(tmp_path / "m"), "--tasks", "gen_sudoku", "--out-dir", str(tmp_path), *extra]
    try:
        code = main(command)
    except SystemExit as stop:  # argparse's own errors
        code = stop.code
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "metrics.csv").exists()


def test_a_model_that_is_not_there_is_a_one_line_error(tmp_path, capsys):
    code = main(["model", "info", str(tmp_path / "no_such_model")])
    err = capsys.readouterr().err
    assert code == 2 and f"no model at {tmp_path / 'no_such_model'}" in err and "Traceback" not in err
