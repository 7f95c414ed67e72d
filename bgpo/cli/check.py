"""``bgpo check``: BGPO's claims (equivalence, lower bound, memory flat in n_t) on a random model → CSV.

``bgpo check --model PATH`` checks them on the user's own model instead (a hub id or a directory: LLaDA
through its remote code, or any checkpoint :func:`bgpo.models.load_model` reads): it loads, its attention is
bidirectional, BGPO and VRPO-OL agree on-policy, and BGPO's memory is flat in n_t. Exit status 1 if any fails.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import Subparsers


def add_parser(sub: Subparsers) -> None:
    """Register ``bgpo check``."""
    check = sub.add_parser("check", help="check BGPO's claims on a small random model (or --model) and write a CSV")
    check.add_argument("--model", help="check this model (hub id or directory) instead of a random one")
    check.add_argument("--dtype", default="float32", choices=["float32", "float64", "bfloat16"],
                       help="with --model: the dtype to check in (default float32)")  # fmt: skip
    check.add_argument("--device", default="cpu", help="with --model: where to run it")
    check.add_argument("--n-t", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="MC sample sizes")
    check.add_argument("--preset", default="nano", help="model preset (default: nano)")
    check.add_argument("--responses", type=int, default=16, help="responses in the batch")
    check.add_argument("--length", type=int, default=32, help="response length L")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--out", type=Path, help="the CSV (default: results/check/bgpo_check.csv, or _model.csv)")
    check.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the checks, print a table, write the CSV; 1 if any BGPO claim fails."""
    from ..selfcheck import run_check, write_rows

    if args.model:
        return run_model(args)
    args.out = args.out or Path("results/check/bgpo_check.csv")
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


def run_model(args: argparse.Namespace) -> int:
    """``bgpo check --model``: load the model, run :func:`bgpo.selfcheck.check_model`, print and write."""
    import csv
    from dataclasses import asdict

    import torch

    from ..models import load_model
    from ..selfcheck import check_model

    model = load_model(args.model, dtype=getattr(torch, args.dtype), device=args.device)
    print(
        f"loaded {args.model}: {type(model.backbone).__name__}, {model.num_parameters():,} parameters, {args.dtype}; "
        f"mask {model.mask_token_id}, EOS {model.eos_token_id}, EoT {model.eot_token_id}, pad {model.pad_token_id}"
    )
    checks = check_model(model, n_t=max(args.n_t))
    for c in checks:
        print(f"{'PASS' if c.passed else 'FAIL'}  {c.check:<22} {c.value:.3g} (limit {c.limit:.3g}): {c.detail}")
    out = args.out or Path("results/check/bgpo_check_model.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["model", *asdict(checks[0])])
        writer.writeheader()
        writer.writerows({"model": args.model, **asdict(c)} for c in checks)
    failed = [c.check for c in checks if not c.passed]
    print(f"wrote {out}; " + (f"FAILED: {', '.join(failed)}" if failed else "every check passed"))
    return 1 if failed else 0
