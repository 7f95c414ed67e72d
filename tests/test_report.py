"""Tables from the tidy run table: the protocol column, one protocol per table, and the line that names it."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bgpo.report import aggregate, write_table

SPEC = {
    "title": "Table 1",
    "rows": [{"label": "BGPO", "where": {"method": "bgpo"}}],
    "columns": [{"label": "GSM8K", "benchmark": "gsm8k", "metric": "accuracy"}],
}


def metrics_csv(path, protocol, value, seed):
    frame = pd.DataFrame([{"task": "gsm8k", "split": "test", "metric": "accuracy", "value": value, "n": 10,
                           "gen_length": 512, "method": "bgpo", "benchmark": "gsm8k", "seed": seed,
                           "model": "m", **({"protocol": protocol} if protocol else {})}])  # fmt: skip
    frame.to_csv(path, index=False)
    return path


def test_tables_keep_one_protocol_and_say_which(tmp_path):
    files = [metrics_csv(tmp_path / "a.csv", "bgpo", 0.80, 0), metrics_csv(tmp_path / "b.csv", "bgpo", 0.84, 1),
             metrics_csv(tmp_path / "c.csv", "d1", 0.70, 0)]  # fmt: skip
    runs = aggregate(files, "abc")
    assert list(runs.protocol) == ["bgpo", "bgpo", "d1"]
    table = write_table(runs, {**SPEC, "protocol": "bgpo"}, tmp_path / "t.csv", tmp_path / "t.md")
    assert table["GSM8K"].iloc[0] == 82.0 and table["GSM8K_n"].iloc[0] == 2  # the d1 row is not averaged in
    assert "Evaluation protocol: bgpo (BGPO paper" in (tmp_path / "t.md").read_text()
    write_table(runs, SPEC, tmp_path / "u.csv", tmp_path / "u.md")  # no protocol filter: the mix is flagged
    assert "Evaluation protocols (mixed: cells may not be comparable): bgpo" in (tmp_path / "u.md").read_text()


def test_old_metrics_without_a_protocol_say_so(tmp_path):
    runs = aggregate([metrics_csv(tmp_path / "a.csv", None, 0.5, 0)], "abc")
    assert list(runs.protocol) == ["not recorded"]
    write_table(runs, SPEC, tmp_path / "t.csv", tmp_path / "t.md")
    assert "Evaluation protocol: not recorded." in (tmp_path / "t.md").read_text()


def test_a_column_can_join_the_gradient_diagnostics(tmp_path):
    """Table 2 with a gradient-std column: `bgpo diagnose`'s CSV joined by method and n_t."""
    from bgpo.cli import main

    files = [metrics_csv(tmp_path / f"{n}_{s}.csv", "bgpo", 0.5 + n / 100 + s / 100, s) for n in (1, 4) for s in (0, 1)]
    runs = aggregate(files, "abc")
    runs["n_t"], runs["kind"] = [1, 1, 4, 4], "rl"
    runs.to_csv(tmp_path / "runs.csv", index=False)
    # As diagnose writes it: whole n_t (Int64), an empty n_t on the slope row, intervals in low/high.
    diagnostics = pd.DataFrame(
        {
            "method": ["bgpo", "bgpo", "bgpo", "vrpo_ol", "bgpo"],
            "n_t": pd.array([1, 4, 4, 4, None], dtype="Int64"),
            "metric": ["std", "std", "bias", "std", "std_slope"],
            "value": [0.031, 0.0162, 0.002, 0.0162, -0.48],
            "low": [0.027, 0.0150, 0.001, 0.0150, -0.55],
            "high": [0.036, 0.0175, 0.003, 0.0175, -0.41],
        }
    )
    diagnostics.to_csv(tmp_path / "diag.csv", index=False)
    spec = {
        "title": "Table 2",
        "rows": [{"label": f"n_t = {n}", "where": {"kind": "rl", "method": "bgpo", "n_t": n}} for n in (1, 4, 8)],
        "columns": [
            {"label": "GSM8K", "benchmark": "gsm8k", "metric": "accuracy"},
            {"label": "grad std", "source": "diagnostics", "metric": "std", "format": ".2e"},
        ],
    }
    args = ["report", "table", "--runs", str(tmp_path / "runs.csv"), "--spec", json.dumps(spec),
            "--out", str(tmp_path / "t.csv"), "--markdown", str(tmp_path / "t.md"),
            "--join", f"diagnostics={tmp_path / 'diag.csv'}"]  # fmt: skip
    assert main(args) == 0
    table = pd.read_csv(tmp_path / "t.csv")
    assert list(table["grad std"]) == ["3.10e-02 [2.70e-02, 3.60e-02]", "1.62e-02 [1.50e-02, 1.75e-02]", "–"]
    assert list(table["GSM8K"]) == ["51.5 ± 0.7", "54.5 ± 0.7", "–"]  # the evaluations are untouched
    with pytest.raises(ValueError, match="pass --join diagnostics=PATH"):
        write_table(pd.read_csv(tmp_path / "runs.csv"), spec, tmp_path / "u.csv", tmp_path / "u.md")
