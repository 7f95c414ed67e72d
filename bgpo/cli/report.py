"""``bgpo report ...``: runs.csv, tables beside the paper's numbers, reward curves and step times."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import Subparsers


def add_parser(sub: Subparsers) -> None:
    """Register ``bgpo report`` and its actions."""
    rep = sub.add_parser("report", help="runs.csv, tables and figures from evaluations and logs")
    rep_sub = rep.add_subparsers(dest="report_command", required=True, metavar="ACTION")
    agg = rep_sub.add_parser("aggregate", help="evaluation metrics.csv files → tidy run table")
    agg.add_argument("--inputs", nargs="+", required=True)
    agg.add_argument("--out", type=Path, required=True)
    agg.set_defaults(func=run_aggregate)
    cat = rep_sub.add_parser("concat", help="concatenate tidy run tables")
    cat.add_argument("--inputs", nargs="+", required=True)
    cat.add_argument("--out", type=Path, required=True)
    cat.set_defaults(func=run_concat)
    tab = rep_sub.add_parser("table", help="a table (CSV and Markdown beside the paper) from a tidy run table")
    tab.add_argument("--runs", type=Path, required=True)
    tab.add_argument("--spec", required=True, help="JSON: rows, columns (see bgpo.report.build_table)")
    tab.add_argument("--out", type=Path, required=True)
    tab.add_argument("--markdown", type=Path, required=True)
    tab.add_argument("--paper", type=Path)
    tab.add_argument(
        "--join",
        nargs="+",
        default=[],
        metavar="NAME=PATH",
        help='further tidy CSVs that spec columns with "source": NAME read (e.g. diagnostics=grad_std_bias.csv)',
    )
    tab.set_defaults(func=run_table)
    pair = rep_sub.add_parser("paired", help="paired differences between methods, seed by seed, with 95% intervals")
    pair.add_argument("--runs", type=Path, required=True)
    pair.add_argument("--spec", required=True, help="JSON: pairs, columns (see bgpo.report.paired_differences)")
    pair.add_argument("--out", type=Path, required=True)
    pair.add_argument("--markdown", type=Path, required=True)
    pair.set_defaults(func=run_paired)
    costs = rep_sub.add_parser("costs", help="a run's peak saved-for-backward memory and step time as tidy rows")
    costs.add_argument("--log", type=Path, required=True, help="the run's log.jsonl")
    costs.add_argument("--meta", nargs="*", default=[], metavar="KEY=VALUE", help="columns: kind, method, seed...")
    costs.add_argument("--out", type=Path, required=True)
    costs.set_defaults(func=run_costs)
    cur = rep_sub.add_parser("curves", help="Fig. 2: training reward curves")
    cur.add_argument("--logs", required=True, help='JSON {"task|method|seed": "path/log.jsonl"}')
    cur.add_argument("--out", type=Path, required=True)
    cur.set_defaults(func=run_curves)
    st = rep_sub.add_parser("step-time", help="Fig. 3 right: step time split per method")
    st.add_argument("--logs", required=True, help='JSON {"task|method|seed": "path/log.jsonl"}')
    st.add_argument("--out", type=Path, required=True)
    st.add_argument("--csv", type=Path, required=True)
    st.set_defaults(func=run_step_time)


def run_aggregate(args: argparse.Namespace) -> int:
    """Evaluation metrics.csv files → one tidy table with the git commit."""
    from .. import report

    frame = report.aggregate([Path(p) for p in args.inputs], report.git_commit())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    print(f"wrote {args.out}")
    return 0


def run_concat(args: argparse.Namespace) -> int:
    """Concatenate tidy tables (duplicate rows dropped)."""
    import pandas as pd

    frame = pd.concat([pd.read_csv(p) for p in args.inputs], ignore_index=True).drop_duplicates()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    print(f"wrote {args.out}")
    return 0


def run_table(args: argparse.Namespace) -> int:
    """A table from the tidy runs: CSV, and Markdown beside the paper's numbers."""
    import pandas as pd

    from .. import report

    runs = pd.read_csv(args.runs)
    sources = {}
    for item in args.join:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--join takes NAME=PATH, got {item!r}")
        sources[name] = pd.read_csv(path)
    table = report.write_table(runs, json.loads(args.spec), args.out, args.markdown, args.paper, sources)
    print(table.to_string(index=False))
    print(f"wrote {args.out}")
    return 0


def run_paired(args: argparse.Namespace) -> int:
    """Paired differences (CSV and Markdown) from the tidy runs."""
    import pandas as pd

    from .. import report

    table = report.write_paired(pd.read_csv(args.runs), json.loads(args.spec), args.out, args.markdown)
    print(table.to_string(index=False))
    print(f"wrote {args.out}")
    return 0


def run_costs(args: argparse.Namespace) -> int:
    """A run's costs from its log as tidy rows beside its metrics."""
    from .. import report

    meta = dict(kv.split("=", 1) for kv in args.meta)
    frame = report.run_costs(args.log, meta)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    print(f"wrote {args.out}")
    return 0


def run_curves(args: argparse.Namespace) -> int:
    """Fig. 2 from training logs."""
    from .. import report

    logs = {tuple(k.split("|")): Path(v) for k, v in json.loads(args.logs).items()}
    report.reward_curves(logs, args.out)
    print(f"wrote {args.out}")
    return 0


def run_step_time(args: argparse.Namespace) -> int:
    """Fig. 3 right (and its CSV) from training logs, grouped by method."""
    from .. import report

    grouped: dict[str, list[Path]] = {}
    for key, path in json.loads(args.logs).items():
        grouped.setdefault(key.split("|")[1], []).append(Path(path))
    print(report.step_times(grouped, args.out, args.csv).to_string(index=False))
    print(f"wrote {args.out}")
    return 0
