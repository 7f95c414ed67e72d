"""``bgpo compare``: cells inside the combined spread, conclusions that hold, are unresolved or flip."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgpo.cli import main
from bgpo.compare import Cell, compare, parse_cell
from bgpo.config import ConfigError

REFERENCE = """row,Sudoku,Countdown
base (SFT),60.0 ± 1.0,28.0 ± 1.0
diffu-GRPO,70.0 ± 1.0,33.0 ± 1.0
BGPO,80.0 ± 1.0,34.0 ± 1.0
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_cells_parse_with_and_without_a_spread():
    assert parse_cell("79.6 ± 0.2") == Cell(79.6, 0.2)
    assert parse_cell("60.1") == Cell(60.1, 0.0, spread=False)
    assert parse_cell("–") is None and parse_cell(float("nan")) is None
    # a paired difference or a gradient std with its 95% interval: (high - low) / 4 as the spread
    assert parse_cell("+1.8 [-1.1, +4.7]") == Cell(1.8, pytest.approx(1.45), interval=True)
    assert parse_cell("1.62e-02 [1.50e-02, 1.75e-02]") == Cell(0.0162, pytest.approx(0.000625), interval=True)


def test_a_single_seed_run_flips_nothing_and_interval_tables_compare_cell_by_cell(tmp_path):
    ref = _write(tmp_path / "ref" / "table1.csv", REFERENCE)
    one_seed = "row,Sudoku,Countdown\nbase (SFT),62.0,28.0\ndiffu-GRPO,75.0,33.0\nBGPO,60.5,34.0\n"
    _, conclusions = compare(_write(tmp_path / "run" / "table1.csv", one_seed).parent, ref.parent)
    sudoku = {c.claim: c.status for c in conclusions if c.column == "Sudoku"}
    assert sudoku["BGPO > base"] == sudoku["BGPO > diffu-GRPO"] == "unresolved"  # no spread: no evidence either way
    paired = 'row,Sudoku\nBGPO − VRPO-OL,"+1.8 [-1.1, +4.7]"\nBGPO − diffu-GRPO,"+3.6 [-3.3, +10.5]"\n'
    _write(tmp_path / "ref" / "table1_paired.csv", paired)
    _write(tmp_path / "run" / "table1_paired.csv", paired.replace("+1.8 [-1.1, +4.7]", "+9.0 [+8.0, +10.0]"))
    diffs, conclusions = compare(tmp_path / "run", tmp_path / "ref")
    cells = {(d.table, d.row): d.inside for d in diffs if d.table == "table1_paired"}
    assert cells == {("table1_paired", "BGPO − VRPO-OL"): False, ("table1_paired", "BGPO − diffu-GRPO"): True}
    assert not [c for c in conclusions if c.table == "table1_paired"]  # differences are not ordered


def test_a_reproduction_within_the_spread_holds_every_resolved_conclusion(tmp_path, capsys):
    ref = _write(tmp_path / "ref" / "table1.csv", REFERENCE)
    run = _write(tmp_path / "run" / "table1.csv", REFERENCE.replace("80.0 ± 1.0", "78.5 ± 1.5"))
    diffs, conclusions = compare(run.parent, ref.parent)
    assert all(d.inside for d in diffs) and len(diffs) == 6
    status = {c.claim + "/" + c.column: c.status for c in conclusions}
    assert status["BGPO > base/Sudoku"] == "holds" and status["BGPO > diffu-GRPO/Sudoku"] == "holds"
    assert "BGPO > diffu-GRPO/Countdown" not in status  # 34 ± 1 vs 33 ± 1: the reference resolves no order
    assert main(["compare", str(run.parent), str(ref.parent)]) == 0
    assert "6/6 cells inside the combined spread" in capsys.readouterr().out


def test_a_flipped_conclusion_fails_and_an_unclear_one_is_unresolved(tmp_path, capsys):
    ref = _write(tmp_path / "ref.csv", REFERENCE)
    flipped = REFERENCE.replace("diffu-GRPO,70.0 ± 1.0", "diffu-GRPO,85.0 ± 1.0")  # now above BGPO's 80
    run = _write(tmp_path / "run.csv", flipped)
    _, conclusions = compare(run, ref)
    assert {c.claim: c.status for c in conclusions if c.column == "Sudoku"}["BGPO > diffu-GRPO"] == "flipped"
    assert main(["compare", str(run), str(ref)]) == 1
    assert "FLIPPED" in capsys.readouterr().out
    unclear = _write(tmp_path / "unclear.csv", REFERENCE.replace("70.0 ± 1.0", "79.0 ± 4.0"))
    _, conclusions = compare(unclear, ref)
    assert {c.claim: c.status for c in conclusions if c.column == "Sudoku"}["BGPO > diffu-GRPO"] == "unresolved"


def test_against_the_paper_only_conclusions_count(tmp_path):
    paper = _write(tmp_path / "paper" / "table1.csv", "row,Sudoku,Countdown,source\nLLaDA-8B-Instruct,12.0,19.5,p\n"
                   "+ diffu-GRPO,26.7,53.1,p\n+ BGPO,26.9,87.5,p\n")  # fmt: skip
    run = _write(tmp_path / "run" / "table1.csv", REFERENCE)
    diffs, conclusions = compare(run.parent, paper.parent)
    assert diffs == []  # LLaDA-8B's numbers are not a target for a tiny model
    claims = {(c.claim, c.column): c.status for c in conclusions}
    assert claims[("BGPO > base", "Sudoku")] == "holds"
    assert ("BGPO > diffu-GRPO", "Sudoku") not in claims  # 26.9 vs 26.7: under a point, no conclusion
    assert claims[("BGPO > diffu-GRPO", "Countdown")] == "unresolved"  # the paper's gap; ours is 34 ± 1 vs 33 ± 1


def test_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        compare(tmp_path / "nope.csv", tmp_path / "nope.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no table\*\.csv"):
        compare(tmp_path / "empty", tmp_path / "empty")
