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
    # No protocol filter: seed 0's two scores (bgpo, d1) are not averaged into one, the error says where they differ
    with pytest.raises(ValueError, match=r"'BGPO' × 'GSM8K': seed 0 has 2 rows \(they differ in protocol\)"):
        write_table(runs, SPEC, tmp_path / "u.csv", tmp_path / "u.md")
    other_seed = aggregate([*files[:2], metrics_csv(tmp_path / "d.csv", "d1", 0.70, 2)], "abc")
    write_table(other_seed, SPEC, tmp_path / "u.csv", tmp_path / "u.md")  # a mix across seeds is flagged
    assert "Evaluation protocols (mixed: cells may not be comparable): bgpo" in (tmp_path / "u.md").read_text()


def test_old_metrics_without_a_protocol_say_so(tmp_path):
    runs = aggregate([metrics_csv(tmp_path / "a.csv", None, 0.5, 0)], "abc")
    assert list(runs.protocol) == ["not recorded"]
    write_table(runs, SPEC, tmp_path / "t.csv", tmp_path / "t.md")
    assert "Evaluation protocol: not recorded." in (tmp_path / "t.md").read_text()


# ---------------------------------------------------------------------------------- paired differences, costs
def _paired_runs() -> pd.DataFrame:
    rows = []
    for seed, (a, b) in enumerate([(0.80, 0.70), (0.76, 0.70), (0.82, 0.74)]):  # BGPO − VRPO-OL: 10, 6, 8 points
        rows.append({"kind": "rl", "method": "bgpo", "benchmark": "sudoku", "metric": "cell_accuracy", "value": a,
                     "seed": seed, "protocol": "custom"})  # fmt: skip
        rows.append({"kind": "rl", "method": "vrpo_ol", "benchmark": "sudoku", "metric": "cell_accuracy", "value": b,
                     "seed": seed, "protocol": "custom"})  # fmt: skip
    return pd.DataFrame(rows)


PAIRED = {
    "pairs": [{"label": "BGPO − VRPO-OL", "a": {"method": "bgpo"}, "b": {"method": "vrpo_ol"}}],
    "columns": [{"label": "Sudoku", "benchmark": "sudoku", "metric": "cell_accuracy"}],
    "protocol": "custom",
}


def test_paired_differences_are_seed_by_seed_with_a_t_interval(tmp_path):
    from bgpo.report import paired_differences, t_quantile, write_paired

    table = paired_differences(_paired_runs(), PAIRED)
    row = table.iloc[0]
    assert row["Sudoku"] == pytest.approx(8.0) and row["Sudoku_n"] == 3
    half = t_quantile(2) * 2.0 / 3**0.5  # differences 10, 6, 8: sd 2, n 3, t(2) = 4.303
    assert (row["Sudoku_low"], row["Sudoku_high"]) == pytest.approx((8.0 - half, 8.0 + half))
    # Unpaired, the spreads of each method (5 and 2.3 points) would hide what the pairs show.
    write_paired(_paired_runs(), PAIRED, tmp_path / "p.csv", tmp_path / "p.md")
    assert "+8.0 [+3.0, +13.0]" in (tmp_path / "p.csv").read_text()
    assert "95% t-interval (3 seeds" in (tmp_path / "p.md").read_text()


def test_a_runs_costs_come_from_its_log_and_feed_cost_columns(tmp_path):
    from bgpo.report import build_table, run_costs

    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"step": i + 1, "peak_saved_bytes": b, "step_time": t}) + "\n"
                           for i, (b, t) in enumerate([(2**20, 1.0), (3 * 2**20, 2.0)])))  # fmt: skip
    costs = run_costs(log, {"kind": "rl", "method": "bgpo", "seed": "0"})
    assert dict(zip(costs.metric, costs.value, strict=True)) == {"peak_saved_mib": 3.0, "step_seconds": 1.5}
    runs = pd.concat([_paired_runs(), costs.assign(seed=0)], ignore_index=True)
    column = {"label": "saved MiB", "benchmark": "cost", "metric": "peak_saved_mib", "scale": 1}
    spec = {"rows": [{"label": "BGPO", "where": {"method": "bgpo"}}], "protocol": "custom", "columns": [column]}
    assert build_table(runs, spec).iloc[0]["saved MiB"] == 3.0  # no protocol filter, its own scale


def test_a_cell_is_one_value_per_seed():
    """n counts seeds with a score (missing ones dropped); a cost column averages each seed over its tasks first,
    so its ± is a spread over seeds; several rows of one seed elsewhere are an error, not an average."""
    from bgpo.report import build_table, t_quantile

    def row(value, seed, task="sudoku", benchmark="sudoku", metric="cell_accuracy"):
        return {"kind": "rl", "method": "bgpo", "train_task": task, "benchmark": benchmark, "metric": metric,
                "value": value, "seed": seed, "protocol": "custom"}  # fmt: skip

    scores = pd.DataFrame([row(0.5, 0), row(float("nan"), 1), row(0.7, 2)])
    spec = {"rows": [{"label": "BGPO", "where": {"method": "bgpo"}}], "protocol": "custom",
            "columns": [{"label": "Sudoku", "benchmark": "sudoku", "metric": "cell_accuracy"}]}  # fmt: skip
    cell = build_table(scores, spec).iloc[0]
    assert (cell["Sudoku"], cell["Sudoku_n"]) == (pytest.approx(60.0), 2)
    # Costs of two tasks per seed: per-seed averages 15, 17, 16 -> ± 1.0 (pooled over tasks it would be ± 5.9)
    per_seed = [(10, 20), (12, 22), (11, 21)]
    costs = pd.DataFrame([row(v, s, t, "cost", "peak_saved_mib") for s, pair in enumerate(per_seed)
                          for t, v in zip(("sudoku", "code"), pair, strict=True)])  # fmt: skip
    column = {"label": "MiB", "benchmark": "cost", "metric": "peak_saved_mib", "scale": 1, "average": "train_task"}
    cost = build_table(costs, {**spec, "columns": [column]}).iloc[0]
    assert (cost["MiB"], cost["MiB_std"], cost["MiB_n"]) == (pytest.approx(16.0), pytest.approx(1.0), 3)
    with pytest.raises(ValueError, match=r"'BGPO' × 'MiB': seed 0 has 2 rows \(they differ in train_task\)"):
        build_table(costs, {**spec, "columns": [{k: v for k, v in column.items() if k != "average"}]})
    # Beyond the table of t quantiles the interval never narrows below the tabulated df's
    assert (
        t_quantile(30) == 2.042 and t_quantile(35) == 2.042 and t_quantile(40) == 2.021 and t_quantile(10**4) == 1.962
    )


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
