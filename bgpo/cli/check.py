"""``bgpo check``: BGPO's claims (equivalence, lower bound, memory flat in n_t) on a random model → CSV."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import Subparsers


def add_parser(sub: Subparsers) -> None:
    """Register ``bgpo check``."""
    check = sub.add_parser("check", help="check BGPO's claims on a small random model and write a CSV")
    check.add_argument("--n-t", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="MC sample sizes")
    check.add_argument("--preset", default="nano", help="model preset (default: nano)")
    check.add_argument("--responses", type=int, default=16, help="responses in the batch")
    check.add_argument("--length", type=int, default=32, help="response length L")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--out", type=Path, default=Path("results/check/bgpo_check.csv"))
    check.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the checks, print a table, write the CSV; 1 if any BGPO claim fails."""
    from ..selfcheck import run_check, write_rows

    rows = run_check(
        args.n_t, preset=args.preset, responses=args.responses, response_length=args.length, seed=args.seed
    )
    write_rows(rows, args.out)
    print(
        f"{'n_t':>4} {'objective':>10} {'saved MB':>9} {'seconds':>8} {'value gap':>10} {'grad gap':>10} {'slack':>8}"
    )
    for r in rows:
        print(
            f"{r.n_t:>4} {r.objective:>10} {r.peak_saved_bytes / 2**20:>9.2f} {r.seconds:>8.3f} "
            f"{r.value_gap:>10.1e} {r.grad_gap:>10.1e} {r.bound_slack:>8.1e}"
        )
    print(f"wrote {args.out}")
    bad = [r for r in rows if r.objective == "bgpo" and (r.value_gap > 1e-9 or r.grad_gap > 1e-9 or r.bound_slack < 0)]
    return 1 if bad else 0
