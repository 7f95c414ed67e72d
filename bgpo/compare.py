"""``bgpo compare``: did a run reproduce a reference? Cell by cell, and conclusion by conclusion.

Both sides are result tables as the pipeline writes them (``table1.csv``: a ``row`` column, then one column per
benchmark holding ``mean ± std`` or a single number), or folders holding such tables (``results/``,
``results/default_run/``, ``results/paper/``): every table present on both sides is compared.

Per cell: the difference of the means, and whether it lies inside the combined spread, ``|Δ| ≤ k·√(s_a² + s_b²)``
with ``k = 2`` (about a 95% band for a difference of two means); a side without a std (one seed, or the paper)
contributes 0, so a single-number cell must match the other side's spread alone.

Conclusions, per column: **RL beats base** (every row below the first improves on the first, the base) and the
**ordering** of rows. A conclusion counts only where the reference resolves it (the two means differ by more
than their combined spread, and by at least ``MIN_GAP`` = 1 point, so that single numbers without a spread, such
as the paper's, do not make every small gap a conclusion); it **flips** when the run finds the opposite with its
own spread resolving that too, and is **unresolved** when the run cannot tell. ``compare`` exits with status 1
when a conclusion flips.

Rows are matched by label, ignoring a leading ``+ `` (the paper's rows), and a first row naming the starting
policy (``base (SFT)``, ``LLaDA-8B-Instruct``) is ``base``; columns by name; a table with no cell in common adds
no line. Cells with a 95% interval (``table1_paired``, Table 2's gradient std) are compared cell by cell, with
(high − low) / 4 as their spread, and form no conclusions; a run's cell without a spread (one seed) resolves
none, so it leaves a conclusion unresolved rather than flipped. Scales differ between a tiny model and
LLaDA-8B, so against ``results/paper/`` only the conclusions are meaningful, which the report says.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .config import ConfigError

K_SPREAD = 2.0  # a difference inside k · combined std counts as agreeing (≈ 95% for a difference of means)
MIN_GAP = 1.0  # points: two cells closer than this resolve no ordering, even without a stated spread (the paper)
_NUM = r"[-+−]?\d+(?:\.\d+)?(?:e[-+]?\d+)?"
# "79.6 ± 0.2", "60.1", "+1.8 [-1.1, +4.7]" (a paired difference), "0.0417 [0.036, 0.0476]", "1.14e-05"
_CELL = re.compile(
    rf"^\s*({_NUM})\s*(?:±\s*({_NUM})|\[\s*({_NUM})\s*,\s*({_NUM})\s*\])?\s*(?:\(n = \d+\))?\s*$", re.IGNORECASE
)


@dataclass(frozen=True)
class Cell:
    """One table cell: mean and standard deviation (0 when the table gives none).

    ``spread``: whether the table stated one (``±`` or an interval). A run's cell without one (a single seed)
    cannot resolve a conclusion. ``interval``: the cell is an estimate with a 95% interval (a paired difference,
    a gradient std), read as mean ± (high − low) / 4: its standard error for a normal interval, more for a
    t-interval over few seeds (so such a comparison errs towards "inside"); such rows are compared cell by cell
    only, not ordered against each other.
    """

    mean: float
    std: float
    spread: bool = True
    interval: bool = False


@dataclass(frozen=True)
class CellDiff:
    """A cell of the run against the reference's."""

    table: str
    row: str
    column: str
    run: Cell
    reference: Cell
    inside: bool

    @property
    def difference(self) -> float:
        """Run minus reference."""
        return self.run.mean - self.reference.mean


@dataclass(frozen=True)
class Conclusion:
    """A comparison of two rows in one column that the reference resolves, and what the run says about it."""

    table: str
    column: str
    claim: str  # e.g. "BGPO > base"
    kind: str  # "rl_beats_base" or "ordering"
    status: str  # "holds", "unresolved" or "flipped"


def parse_cell(text: object) -> Cell | None:
    """``"79.6 ± 0.2"`` → Cell(79.6, 0.2); ``"60.1"`` → Cell(60.1, 0, spread=False); ``"+1.8 [-1.1, +4.7]"``
    → Cell(1.8, 1.45, interval=True); ``"–"`` or empty → None."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return None
    match = _CELL.match(str(text).replace("−", "-"))
    if not match:
        return None
    mean, std, low, high = (None if g is None else float(g) for g in match.groups())
    if low is not None and high is not None:
        return Cell(mean, (high - low) / 4, spread=True, interval=True)
    return Cell(mean, std or 0.0, spread=std is not None)


# "base (SFT)", "LLaDA-8B-Instruct": every row's starting policy. Not "SFT base of sudoku" (Table 4 of the default:
# one task's base, which the rows trained on other tasks did not start from, so "RL beats base" means nothing there).
_BASE = re.compile(r"^base\b|Instruct", re.IGNORECASE)


def _row_key(label: object, first: bool) -> str:
    text = str(label).strip().removeprefix("+ ").strip()
    return "base" if first and _BASE.search(text) else text


def read_table(path: Path) -> dict[str, dict[str, Cell]]:
    """A result table as ``{row: {column: Cell}}``: the first column labels the rows, ``source`` is ignored."""
    try:
        frame = pd.read_csv(path, dtype=str)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ConfigError(f"{path}: cannot read a result table ({err})") from None
    if len(frame.columns) < 2:
        raise ConfigError(f"{path}: not a result table (a label column, then one column per benchmark)")
    label, *columns = [c for c in frame.columns if c != "source"]
    table: dict[str, dict[str, Cell]] = {}
    for i, record in enumerate(frame.to_dict("records")):
        cells = {c: cell for c in columns if (cell := parse_cell(record.get(c))) is not None}
        table[_row_key(record[label], i == 0)] = cells
    return table


def _tables(path: Path) -> dict[str, Path]:
    """The tables at ``path``: the file itself, or every ``table*.csv`` of a folder."""
    if path.is_dir():
        found = {p.stem: p for p in sorted(path.glob("table*.csv"))}
        if not found:
            raise ConfigError(f"{path}: no table*.csv in this folder")
        return found
    if not path.is_file():
        raise ConfigError(f"{path} does not exist")
    return {path.stem: path}


def _resolved(a: Cell, b: Cell) -> bool:
    return abs(a.mean - b.mean) > max(K_SPREAD * math.hypot(a.std, b.std), MIN_GAP)


def compare_tables(
    name: str, run: dict[str, dict[str, Cell]], reference: dict[str, dict[str, Cell]]
) -> tuple[list[CellDiff], list[Conclusion]]:
    """Cells and conclusions of one table (see the module docstring)."""
    diffs = []
    for row, cells in reference.items():
        for column, ref in cells.items():
            mine = run.get(row, {}).get(column)
            if mine is not None:
                inside = abs(mine.mean - ref.mean) <= K_SPREAD * math.hypot(mine.std, ref.std)
                diffs.append(CellDiff(name, row, column, mine, ref, inside))
    conclusions = []
    rows = [r for r in reference if r in run]
    columns = sorted({c for r in rows for c in reference[r] if c in run[r]})
    for column in columns:
        present = [r for r in rows if column in reference[r] and column in run[r]]
        for a, b in itertools.combinations(present, 2):
            ref_a, ref_b = reference[a][column], reference[b][column]
            if ref_a.interval or ref_b.interval or not _resolved(ref_a, ref_b):
                continue
            better, worse = (a, b) if ref_a.mean > ref_b.mean else (b, a)
            kind = "rl_beats_base" if "base" in (a, b) else "ordering"
            mine_better, mine_worse = run[better][column], run[worse][column]
            # A run's cell without a spread (one seed) resolves nothing: it can neither confirm nor flip.
            known = mine_better.spread and mine_worse.spread
            if known and mine_better.mean > mine_worse.mean and _resolved(mine_better, mine_worse):
                status = "holds"
            elif known and mine_better.mean < mine_worse.mean and _resolved(mine_better, mine_worse):
                status = "flipped"
            else:
                status = "unresolved"
            conclusions.append(Conclusion(name, column, f"{better} > {worse}", kind, status))
    return diffs, conclusions


def compare(run_path: Path, reference_path: Path) -> tuple[list[CellDiff], list[Conclusion]]:
    """Compare every table present on both sides."""
    runs, references = _tables(Path(run_path)), _tables(Path(reference_path))
    if Path(run_path).is_file() and Path(reference_path).is_file():
        pairs = [(references[next(iter(references))], runs[next(iter(runs))], next(iter(references)))]
    else:
        common = sorted(set(runs) & set(references))
        if not common:
            raise ConfigError(
                f"no table in common: {run_path} has {', '.join(sorted(runs))}; {reference_path} has "
                f"{', '.join(sorted(references))}"
            )
        pairs = [(references[name], runs[name], name) for name in common]
    diffs: list[CellDiff] = []
    conclusions: list[Conclusion] = []
    for ref_file, run_file, name in pairs:
        d, c = compare_tables(name, read_table(run_file), read_table(ref_file))
        # The paper's tables (a source column) are LLaDA-8B's numbers: only their conclusions carry over.
        diffs += [] if _is_paper(ref_file) else d
        conclusions += c
    return diffs, conclusions


def _is_paper(path: Path) -> bool:
    return "source" in pd.read_csv(path, nrows=0).columns


def report_lines(diffs: list[CellDiff], conclusions: list[Conclusion]) -> list[str]:
    """The human-readable report: cells, then conclusions, then a verdict line."""
    lines = [f"{'table':<14} {'row':<20} {'column':<12} {'run':>14} {'reference':>14} {'Δ':>7}  inside"]
    for d in diffs:
        run = f"{d.run.mean:.1f} ± {d.run.std:.1f}"
        ref = f"{d.reference.mean:.1f} ± {d.reference.std:.1f}"
        lines.append(f"{d.table:<14} {d.row:<20} {d.column:<12} {run:>14} {ref:>14} {d.difference:>+7.1f}  "
                     f"{'yes' if d.inside else 'NO'}")  # fmt: skip
    lines.append("")
    for c in conclusions:
        lines.append(f"{c.status.upper():<10} {c.table:<14} {c.column:<12} {c.claim} ({c.kind.replace('_', ' ')})")
    flipped = [c for c in conclusions if c.status == "flipped"]
    inside = sum(d.inside for d in diffs)
    lines.append("")
    lines.append(
        f"{inside}/{len(diffs)} cells inside the combined spread (k = {K_SPREAD:g}); conclusions: "
        f"{sum(c.status == 'holds' for c in conclusions)} hold, "
        f"{sum(c.status == 'unresolved' for c in conclusions)} unresolved, {len(flipped)} flipped"
    )
    return lines


__all__ = ["Cell", "CellDiff", "Conclusion", "compare", "compare_tables", "parse_cell", "read_table", "report_lines"]
