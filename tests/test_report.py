"""Tables from the tidy run table: the protocol column, one protocol per table, and the line that names it."""

from __future__ import annotations

import pandas as pd

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
