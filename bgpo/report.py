"""Results: the tidy ``runs.csv``, tables beside the paper's numbers, and figures (``bgpo report ...``).

``runs.csv`` has one row per evaluated model × benchmark × metric: the model's kind (``base`` or ``rl``), method
variant, training task, benchmark, metric, value, seed, n_t, evaluation length, the evaluation protocol
(:mod:`bgpo.protocols`; ``custom`` for a config's own settings), the training step of the evaluated
checkpoint, the git commit and the run's config hash. Tables and figures are derived from it (and from
the runs' ``log.jsonl``) by separate commands, so a figure can be redrawn without rerunning anything.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

RUN_COLUMNS = [
    "kind", "method", "train_task", "benchmark", "metric", "value", "seed", "n_t", "gen_length", "protocol", "step",
    "n", "git_commit", "config_hash", "model", "cpu", "threads", "torch", "transformers",
]  # fmt: skip


COST = "cost"  # the benchmark column of a run's cost rows (peak memory and time, from its log.jsonl)
# Student's t 97.5% quantiles for 1..30 degrees of freedom (a 95% two-sided interval); the normal's beyond.
_T975 = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
    2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
]  # fmt: skip


def git_commit(root: Path | None = None) -> str:
    """The checkout's commit (with ``-dirty`` if it has uncommitted changes), or ``unknown``."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit.stdout.strip()[:12] + ("-dirty" if dirty.stdout.strip() else "")


def aggregate(metric_files: Sequence[Path], commit: str) -> pd.DataFrame:
    """Concatenate evaluation ``metrics.csv`` files (with their ``--meta`` columns) into the tidy run table."""
    frames = []
    for path in metric_files:
        frame = pd.read_csv(path)
        frame = frame.rename(columns={"task": "benchmark_task"})
        frames.append(frame)
    if not frames:
        raise ValueError("no evaluation results to aggregate")
    runs = pd.concat(frames, ignore_index=True)
    runs["git_commit"] = commit
    # The evaluated checkpoint's step and its run's config hash, from the files the trainer writes.
    steps, hashes = {}, {}
    for model in runs["model"].dropna().unique():
        info, summary = Path(model) / "bgpo_info.json", Path(model).parent / "summary.json"
        steps[model] = json.loads(info.read_text()).get("step") if info.is_file() else pd.NA
        hashes[model] = json.loads(summary.read_text()).get("config_hash") if summary.is_file() else pd.NA
    runs["step"] = runs["model"].map(steps)
    runs["config_hash"] = runs["model"].map(hashes)
    if "protocol" not in runs:  # metrics.csv files written before the column existed
        runs["protocol"] = pd.NA
    runs["protocol"] = runs["protocol"].fillna("not recorded")
    for column in RUN_COLUMNS:
        if column not in runs:
            runs[column] = pd.NA
    return runs[RUN_COLUMNS + [c for c in runs.columns if c not in RUN_COLUMNS]]


def _select(runs: pd.DataFrame, where: dict[str, Any]) -> pd.DataFrame:
    mask = pd.Series(True, index=runs.index)
    for key, value in where.items():
        mask &= runs[key].astype(str) == str(value)
    return runs[mask]


def build_table(
    runs: pd.DataFrame, spec: dict[str, Any], sources: Mapping[str, pd.DataFrame] | None = None
) -> pd.DataFrame:
    """A table from a spec: rows (label + filter), columns (label + benchmark + metric), mean ± std over seeds.

    ``spec = {"rows": [{"label": "BGPO", "where": {"method": "bgpo"}}], "columns": [{"label": "Sudoku",
    "benchmark": "sudoku", "metric": "cell_accuracy", "where": {...}}], "scale": 100, "protocol": "bgpo"}``; a
    column's ``where`` adds filters (e.g. an evaluation length); ``protocol`` keeps only the rows of that
    evaluation protocol (scores of different protocols are never averaged). Returns one row per table row with
    ``<label>`` (mean), ``<label>_std`` and ``<label>_n`` (the number of seeds) per column.

    A column with ``"source": NAME`` reads another tidy frame, ``sources[NAME]`` (e.g. ``bgpo diagnose``'s CSV:
    method, n_t, metric, value, low, high), instead of the runs: its cell holds the rows matching the column's
    ``metric`` and ``where`` and those keys of the row's ``where`` that the frame has (Table 2's ``method`` and
    ``n_t``; ``kind`` is ignored), compared as numbers where both sides are numbers. Its own ``scale`` (default 1)
    and ``format`` (a format spec, default ``.3g``) apply; a single matching row with ``low``/``high`` also gives
    ``<label>_low`` and ``<label>_high`` (an interval, shown in brackets).
    """
    scale = spec.get("scale", 100.0)
    rows = []
    for row in spec["rows"]:
        out: dict[str, Any] = {"row": row["label"]}
        for col in spec["columns"]:
            if "source" in col:
                out.update(_joined_cell(_source(sources, col), row, col))
                continue
            values = seed_values(_cell(runs, spec, row, col), col, row["label"]) * col.get("scale", scale)
            out[col["label"]] = values.mean() if len(values) else math.nan
            out[f"{col['label']}_std"] = values.std(ddof=1) if len(values) > 1 else 0.0 if len(values) else math.nan
            out[f"{col['label']}_n"] = len(values)
        rows.append(out)
    return pd.DataFrame(rows)


def _source(sources: Mapping[str, pd.DataFrame] | None, col: dict[str, Any]) -> pd.DataFrame:
    name = col["source"]
    if not sources or name not in sources:
        raise ValueError(
            f"table column {col['label']!r} reads source {name!r}, which was not given; "
            f"pass --join {name}=PATH to bgpo report table (given: {', '.join(sources or {}) or 'none'})"
        )
    return sources[name]


def _matches(column: pd.Series, value: Any) -> pd.Series:
    """Rows whose ``column`` equals ``value``: as numbers where both are numbers (``4`` = ``4.0``), else as text."""
    number = pd.to_numeric(column, errors="coerce")
    try:
        wanted = float(value)
    except (TypeError, ValueError):
        wanted = math.nan
    if not math.isnan(wanted):
        return (number == wanted) | (column.astype(str) == str(value))
    return column.astype(str) == str(value)


def _joined_cell(frame: pd.DataFrame, row: dict[str, Any], col: dict[str, Any]) -> dict[str, Any]:
    """A cell of a ``source`` column (see :func:`build_table`)."""
    where = {k: v for k, v in row.get("where", {}).items() if k in frame}
    where.update({"metric": col["metric"], **col.get("where", {})})
    mask = pd.Series(True, index=frame.index)
    for key, value in where.items():
        mask &= _matches(frame[key], value)
    cell = frame[mask]
    values = cell["value"].astype(float) * col.get("scale", 1.0)
    label = col["label"]
    out = {
        label: values.mean() if len(values) else math.nan,
        f"{label}_std": values.std(ddof=1) if len(values) > 1 else 0.0 if len(values) else math.nan,
        f"{label}_n": len(values),
    }
    if len(values) == 1 and {"low", "high"} <= set(cell.columns):
        out[f"{label}_low"] = float(cell["low"].iloc[0]) * col.get("scale", 1.0)
        out[f"{label}_high"] = float(cell["high"].iloc[0]) * col.get("scale", 1.0)
    return out


def seed_values(cell: pd.DataFrame, col: Mapping[str, Any], row_label: str) -> pd.Series:
    """A cell's value per seed, missing scores dropped: the sample its mean, ± and n are computed from.

    A column with ``average`` (Table 1's cost columns: ``train_task``) first averages each seed's rows over
    that key, so its ± is the spread over seeds of the average. Otherwise a seed must have one row: several
    would be averaged as if they were one measurement (``runs.csv`` holds out-of-domain, n_t and length runs
    beside Table 1's), so that is an error naming the columns where they differ. Rows without a ``seed``
    column count one each.
    """
    values = cell.assign(value=pd.to_numeric(cell["value"], errors="coerce")).dropna(subset=["value"])
    if "seed" not in values.columns:
        return values["value"].reset_index(drop=True)
    counts = values.groupby("seed").size()
    if not col.get("average") and bool((counts > 1).any()):
        seed = counts[counts > 1].index[0]
        rows = values[values["seed"] == seed]
        differ = [c for c in rows.columns if c != "value" and rows[c].astype(str).nunique() > 1]
        raise ValueError(
            f"table cell {row_label!r} × {col['label']!r}: seed {seed} has {len(rows)} rows (they differ in "
            f"{', '.join(differ) or 'nothing'}); pin the cell with the row's or column's where, or give the column "
            "an 'average' key to average them per seed"
        )
    return values.groupby("seed")["value"].mean()


def _cell(runs: pd.DataFrame, spec: dict[str, Any], row: dict[str, Any], col: dict[str, Any]) -> pd.DataFrame:
    """The rows of ``runs`` behind one cell of a table."""
    where = {
        # Costs come from training logs, not from an evaluation: no protocol.
        **({"protocol": spec["protocol"]} if spec.get("protocol") and col.get("benchmark") != COST else {}),
        **row.get("where", {}),
        "benchmark": col["benchmark"],
        "metric": col["metric"],
        **col.get("where", {}),
        **row.get("column_where", {}).get(col["label"], {}),  # a cell's own filter (Table 6's lengths)
    }
    return _select(runs, where)


def table_protocols(runs: pd.DataFrame, spec: dict[str, Any]) -> list[str]:
    """The evaluation protocols of the results a table shows (one, unless the runs mix them)."""
    if "protocol" not in runs:
        return ["not recorded"]
    # Costs and joined columns are not evaluations: they have no protocol.
    columns = [c for c in spec["columns"] if "source" not in c and c.get("benchmark") != COST]
    found = {str(p) for r in spec["rows"] for c in columns for p in _cell(runs, spec, r, c)["protocol"]}
    return sorted(found)


def protocol_line(protocols: Sequence[str]) -> str:
    """The sentence of a table's Markdown that says which evaluation protocol produced it."""
    from .protocols import CUSTOM, PROTOCOLS

    if not protocols:
        return "Evaluation protocol: none (the table has no results yet)."
    described = []
    for name in protocols:
        if name in PROTOCOLS:
            described.append(f"{name} ({PROTOCOLS[name].source})")
        elif name == CUSTOM:
            described.append(f"{CUSTOM} (the config's own settings per benchmark: gen_length, block_length and "
                             "steps in runs.csv)")  # fmt: skip
        else:
            described.append(name)
    if len(described) > 1:
        return "Evaluation protocols (mixed: cells may not be comparable): " + "; ".join(described) + "."
    return f"Evaluation protocol: {described[0]}."


def format_table(table: pd.DataFrame, labels: Sequence[str], formats: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``mean ± std`` cells (one decimal, or the column's format spec in ``formats``), ``–`` where there is no
    value; a cell with an interval (``<label>_low``/``_high``) shows it in brackets."""
    out = pd.DataFrame({"row": table["row"]})
    for label in labels:
        fmt = (formats or {}).get(label, ".1f")
        lows = table[f"{label}_low"] if f"{label}_low" in table else [math.nan] * len(table)
        highs = table[f"{label}_high"] if f"{label}_high" in table else [math.nan] * len(table)
        cells = []
        for mean, std, n, low, high in zip(
            table[label], table[f"{label}_std"], table[f"{label}_n"], lows, highs, strict=True
        ):
            if n == 0 or pd.isna(mean):
                cells.append("–")
            elif n == 1:
                interval = "" if pd.isna(low) else f" [{low:{fmt}}, {high:{fmt}}]"
                cells.append(f"{mean:{fmt}}{interval}")
            else:
                cells.append(f"{mean:{fmt}} ± {std:{fmt}}")
        out[label] = cells
    return out


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table of a frame of strings."""
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    lines = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *lines])


def write_table(
    runs: pd.DataFrame,
    spec: dict[str, Any],
    out_csv: Path,
    out_md: Path,
    paper: Path | None = None,
    sources: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Build a table, write it as CSV (``mean ± std`` cells) and as Markdown beside the paper's numbers.

    ``sources`` are the further tidy frames that ``source`` columns read (:func:`build_table`).
    """
    table = build_table(runs, spec, sources)
    labels = [c["label"] for c in spec["columns"]]
    formats = {c["label"]: c.get("format", ".3g") for c in spec["columns"] if "source" in c}
    formatted = format_table(table, labels, formats)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    formatted.to_csv(out_csv, index=False)
    text = [f"# {spec.get('title', out_csv.stem)}", "", "This run (accuracy %, mean ± std over seeds):", "",
            markdown_table(formatted), "", protocol_line(table_protocols(runs, spec))]  # fmt: skip
    if spec.get("note"):
        text += ["", spec["note"]]
    if paper is not None and paper.is_file():
        reference = pd.read_csv(paper, dtype=str).fillna("–")
        text += ["", f"The paper ({paper.name}; LLaDA-8B-Instruct, 8 × H800):", "", markdown_table(reference)]
    out_md.write_text("\n".join(text) + "\n")
    return table


def run_costs(log: Path, meta: dict[str, str]) -> pd.DataFrame:
    """A run's costs as tidy rows (benchmark ``cost``): what Table 1's cost columns average.

    ``peak_saved_mib``: the largest bytes saved for backward in any step (the memory an objective keeps alive;
    BGPO's is flat in n_t); ``step_seconds``: the mean wall time of a training step (rollout, rewards,
    likelihoods and backward, optimiser), on this machine.
    """
    from .training.runlog import log_steps

    records = log_steps(log)
    if not records:
        from .config import ConfigError

        raise ConfigError(f"{log}: no training steps logged")
    values = {
        "peak_saved_mib": max(r["peak_saved_bytes"] for r in records) / 2**20,
        "step_seconds": sum(r["step_time"] for r in records) / len(records),
    }
    rows = [{**meta, "benchmark": COST, "metric": metric, "value": value, "n": len(records)}
            for metric, value in values.items()]  # fmt: skip
    return pd.DataFrame(rows)


# Beyond 30 degrees of freedom: the quantile at the tabulated df at or below (a slightly wider interval, never a
# narrower one; the quantile falls with df): 2.042 from 31, 2.021 from 40, …, 1.962 from 1000.
_T975_LARGE = ((40, 2.021), (60, 2.000), (120, 1.980), (1000, 1.962))


def t_quantile(df: int) -> float:
    """Student's t 97.5% quantile with ``df`` degrees of freedom (the half-width factor of a 95% interval)."""
    if df < 1:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    value = _T975[-1]
    for start, quantile in _T975_LARGE:
        if df >= start:
            value = quantile
    return value


def paired_differences(runs: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """Paired differences between methods, seed by seed: mean and 95% t-interval per column.

    ``spec = {"pairs": [{"label": "BGPO − VRPO-OL", "a": {"method": "bgpo"}, "b": {"method": "vrpo_ol"}}],
    "columns": [...], "scale": 100, "protocol": ...}`` (columns as in :func:`build_table`). Runs are paired by
    seed, and with the default's matched design the same seed means the same SFT base, data order and rollout
    noise, so the difference removes what the two runs share. Returns one row per pair with ``<label>``
    (mean difference), ``<label>_low``/``<label>_high`` (the interval) and ``<label>_n`` (pairs).
    """
    scale = spec.get("scale", 100.0)
    rows = []
    for pair in spec["pairs"]:
        out: dict[str, Any] = {"row": pair["label"]}
        for col in spec["columns"]:
            a = seed_values(_cell(runs, spec, {"where": pair["a"]}, col), col, pair["label"])
            b = seed_values(_cell(runs, spec, {"where": pair["b"]}, col), col, pair["label"])
            d = (a - b).dropna() * col.get("scale", scale)
            mean = d.mean() if len(d) else math.nan
            half = t_quantile(len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else math.nan
            out.update({col["label"]: mean, f"{col['label']}_low": mean - half, f"{col['label']}_high": mean + half,
                        f"{col['label']}_n": len(d)})  # fmt: skip
        rows.append(out)
    return pd.DataFrame(rows)


def write_paired(runs: pd.DataFrame, spec: dict[str, Any], out_csv: Path, out_md: Path) -> pd.DataFrame:
    """Write :func:`paired_differences` as CSV and Markdown cells ``+1.2 [−0.5, +2.9] (n = 3)``."""
    table = paired_differences(runs, spec)
    labels = [c["label"] for c in spec["columns"]]
    out = pd.DataFrame({"row": table["row"]})
    for label in labels:
        cells = []
        for mean, low, high, n in zip(table[label], table[f"{label}_low"], table[f"{label}_high"],
                                      table[f"{label}_n"], strict=True):  # fmt: skip
            if n == 0:
                cells.append("–")
            elif n == 1:
                cells.append(f"{mean:+.1f} (n = 1)")
            else:
                cells.append(f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]")
        out[label] = cells
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(out_csv, index=False)
    n = int(table[[f"{label}_n" for label in labels]].max().max()) if len(table) else 0
    rows = {**spec, "rows": [{"where": p["a"]} for p in spec["pairs"]]}
    text = [f"# {spec.get('title', out_csv.stem)}", "",
            f"Mean difference over seeds (points), paired by seed, with its 95% t-interval ({n} seeds; an "
            "interval that excludes 0 resolves the difference at this sample size):", "", markdown_table(out), "",
            protocol_line(table_protocols(runs, rows))]  # fmt: skip
    if spec.get("note"):
        text += ["", spec["note"]]
    out_md.write_text("\n".join(text) + "\n")
    return table


# ----------------------------------------------------------------------------------------------- figures
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path) -> None:
    """Lay out, write (creating folders) and close a figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150)
    plt.close(fig)


def reward_curves(logs: dict[tuple[str, str, str], Path], out: Path, window: int = 5) -> None:
    """Fig. 2: mean training reward vs step, one panel per task, one line per method (mean over seeds).

    Args:
        logs: (task, method label, seed) → the run's ``log.jsonl``.
        out: the PNG to write.
        window: moving-average window in steps.
    """
    plt = _plt()
    frames = []
    for (task, method, seed), path in logs.items():
        records = [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]
        steps, rewards = [r["step"] for r in records], [r["reward_mean"] for r in records]
        frames.append(pd.DataFrame({"task": task, "method": method, "seed": seed, "step": steps, "reward": rewards}))
    data = pd.concat(frames)
    tasks = list(dict.fromkeys(data.task))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for method, part in data[data.task == task].groupby("method", sort=False):
            mean = part.groupby("step").reward.mean().rolling(window, min_periods=1).mean()
            ax.plot(mean.index, mean.values, label=method)
        ax.set_title(task)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("training reward")
    axes[0][-1].legend(fontsize=8)
    _save(fig, out)


def step_times(logs: dict[str, list[Path]], out_png: Path, out_csv: Path) -> pd.DataFrame:
    """Fig. 3 right: average step time per method, split into rollout, likelihood + backward, and the rest."""
    rows = []
    for method, paths in logs.items():
        records = [json.loads(x) for p in paths for x in Path(p).read_text().splitlines() if x.strip()]
        frame = pd.DataFrame(records)
        rollout = (frame.rollout_time + frame.reward_time).mean()
        update = (frame.prepare_time + frame.update_time).mean()
        rows.append({"method": method, "rollout_s": rollout, "likelihood_backward_s": update,
                     "optimiser_s": frame.optimizer_time.mean(), "step_s": frame.step_time.mean(),
                     "steps": len(frame)})  # fmt: skip
    table = pd.DataFrame(rows)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_csv, index=False)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    bottom = pd.Series(0.0, index=table.index)
    for column, label in (("rollout_s", "rollout"), ("likelihood_backward_s", "likelihood + backward"),
                          ("optimiser_s", "optimiser")):  # fmt: skip
        ax.bar(table.method, table[column], bottom=bottom, label=label)
        bottom += table[column]
    ax.set_ylabel("seconds per step")
    ax.set_title("average training step time")
    ax.legend(fontsize=8)
    _save(fig, out_png)
    return table


def chunk_plot(frame: pd.DataFrame, out: Path) -> None:
    """BGPO's chunk size k: likelihood-and-backward time against peak memory (``bgpo bench chunks``'s CSV)."""
    plt = _plt()
    column = "cuda_peak_bytes" if frame["cuda_peak_bytes"].notna().all() else "peak_saved_bytes"
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    n_t = int(frame[frame.method == "bgpo"].n_t.max())
    bgpo = frame[(frame.method == "bgpo") & (frame.n_t == n_t)].sort_values("samples_per_chunk")
    ax.plot(bgpo[column] / 2**20, bgpo.likelihood_backward_s, "o-", label=f"BGPO n_t={n_t}, k samples per pass")
    for _, r in bgpo.iterrows():
        ax.annotate(f"k={r.samples_per_chunk}", (r[column] / 2**20, r.likelihood_backward_s), fontsize=7,
                    textcoords="offset points", xytext=(4, 4))  # fmt: skip
    for _, r in frame[(frame.method != "bgpo") | (frame.n_t != n_t)].iterrows():
        ax.plot(r[column] / 2**20, r.likelihood_backward_s, "s", label=f"{r.method} n_t={r.n_t}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel(f"{column.replace('_', ' ')} (MiB)")
    ax.set_ylabel("likelihood + backward (s)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, out)


def memory_plot(frame: pd.DataFrame, out: Path, column: str = "peak_saved_bytes") -> None:
    """Fig. 1: peak memory vs n_t, one line per method (from ``bgpo bench memory``'s CSV)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.0, 3.6))
    styles = iter([("o", "-"), ("s", "--"), ("^", ":"), ("D", "-.")] * 4)
    for method, part in frame.groupby("method", sort=False):
        part = part.sort_values("n_t")
        marker, line = next(styles)
        ax.plot(part.n_t, part[column] / 2**20, marker=marker, linestyle=line, label=method)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("MC sample size n_t")
    ax.set_ylabel(f"{column.replace('_', ' ')} (MiB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, out)


def sampler_plot(frame: pd.DataFrame, out: Path) -> None:
    """Decoding modes: tokens/s against task accuracy, one panel per task (``bgpo bench sampler --config``).

    Each point is one mode at one response length and batch size; a mode keeps its colour across panels, the
    marker tells the length and batch apart. The exact mode (``none``) is the reference: a good mode sits to
    its right at the same height.
    """
    plt = _plt()
    tasks = list(dict.fromkeys(frame["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.4 * len(tasks), 3.4), squeeze=False)
    modes = list(dict.fromkeys(frame["mode"]))
    palette = ["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C8", "C9", "k"]  # C7 is the legend's grey
    colours = {m: palette[i % len(palette)] for i, m in enumerate(modes)}
    # Lengths differ by task: the marker tells the length as a multiple of the task's shortest, and the batch.
    factor = frame["gen_length"] / frame.groupby("task")["gen_length"].transform("min")
    settings = list(dict.fromkeys(zip(factor, frame["batch"], strict=True)))
    markers = dict(zip(settings, "osD^v<>phX*" * 4, strict=False))
    for ax, task in zip(axes[0], tasks, strict=True):
        part = frame[frame["task"] == task]
        for i, r in part.iterrows():
            ax.plot(r.tokens_per_s, r.accuracy, markers[(factor[i], r.batch)], color=colours[r["mode"]], alpha=0.85)
        ax.set_xscale("log")
        ax.set_title(task, fontsize=9)
        ax.set_ylabel(f"{part['metric'].iloc[0].replace('_', ' ')} (%)", fontsize=8)
        ax.set_xlabel("tokens/s")
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=colours[m], marker="o", linestyle="", label=m) for m in modes]
    for setting in settings:
        label = f"{setting[0]:g}× length, batch {setting[1]}"
        handles.append(plt.Line2D([], [], color="gray", marker=markers[setting], linestyle="", label=label))
    axes[0][-1].legend(handles=handles, fontsize=6, loc="best")
    _save(fig, out)
