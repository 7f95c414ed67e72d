"""``bgpo compare RUN REFERENCE``: does a run reproduce a reference (cells within the spread, conclusions hold)?"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import Subparsers


def add_parser(sub: Subparsers) -> None:
    """Register ``bgpo compare``."""
    cmp = sub.add_parser(
        "compare",
        help="compare a run's tables with a reference (results/default_run, results/paper): cells and conclusions",
    )
    cmp.add_argument("run", type=Path, help="a table CSV or a results folder (e.g. results/)")
    cmp.add_argument("reference", type=Path, help="a table CSV or a results folder (e.g. results/default_run/)")
    cmp.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the comparison; exit status 1 if any conclusion of the reference flips."""
    from ..compare import compare, report_lines

    diffs, conclusions = compare(args.run, args.reference)
    for line in report_lines(diffs, conclusions):
        print(line)
    return 1 if any(c.status == "flipped" for c in conclusions) else 0
