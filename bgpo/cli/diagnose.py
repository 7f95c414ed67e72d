"""``bgpo diagnose``: gradient standard deviation and bias per method and n_t (BGPO Fig. 3 left/middle)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import Subparsers


def add_parser(sub: Subparsers) -> None:
    """Register ``bgpo diagnose``."""
    diag = sub.add_parser("diagnose", help="gradient std and bias vs n_t per method (BGPO Fig. 3 left/middle)")
    diag.add_argument("--model", help="model directory or hub id (default: a random model from --preset)")
    diag.add_argument("--preset", default="nano", help="preset of the random model (default: nano)")
    diag.add_argument("--methods", nargs="+", default=["bgpo", "vrpo_ol", "diffu_grpo"], help="method variants")
    diag.add_argument("--n-t", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="MC sample sizes")
    diag.add_argument("--repeats", type=int, default=8, help="gradients per setting, K (paper: 8)")
    diag.add_argument("--golden-n-t", type=int, default=256, help="MC samples of the golden gradient (paper: 256)")
    diag.add_argument("--responses", type=int, default=16, help="responses in the fixed batch")
    diag.add_argument("--group-size", type=int, default=8, help="responses per prompt, G")
    diag.add_argument("--prompt-length", type=int, default=8)
    diag.add_argument("--length", type=int, default=16, help="response length L")
    diag.add_argument("--seed", type=int, default=0)
    diag.add_argument("--dtype", default="float64", choices=["float64", "float32", "bfloat16"])
    diag.add_argument("--device", default="cpu")
    diag.add_argument("--out", type=Path, default=Path("results/diagnostics/grad_std_bias.csv"))
    diag.add_argument("--plot", type=Path, help="also write the figure here (PNG)")
    diag.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compute the diagnostics on one fixed batch, print them, write the CSV (and the figure)."""
    import torch

    from ..advantages import group_advantages
    from ..diagnostics import gradient_diagnostics, plot_diagnostics
    from ..models import load_model
    from ..testing import random_batch, toy_model

    torch.manual_seed(args.seed)  # nothing below draws from the global RNG; this only pins stray kernels
    dtype = getattr(torch, args.dtype)
    if args.model:
        model = load_model(args.model, dtype=dtype, device=args.device)
    else:
        model = toy_model(args.preset, seed=args.seed, dtype=dtype).to(args.device)
    gen = torch.Generator().manual_seed(args.seed)
    rewards = torch.randint(0, 2, (args.responses,), generator=gen).double()
    advantages = group_advantages(rewards, args.group_size)
    batch = random_batch(
        model,
        num_responses=args.responses,
        prompt_length=args.prompt_length,
        response_length=args.length,
        generator=gen,
        advantages=advantages,
    )
    batch.group_size = args.group_size
    batch = batch.to(args.device)
    frame = gradient_diagnostics(
        model, batch, args.methods, args.n_t, repeats=args.repeats, golden_n_t=args.golden_n_t, seed=args.seed
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    table = frame[frame.metric.isin(["std", "bias", "bias_corrected", "cosine"])]
    print(table.pivot_table(index=["method", "n_t"], columns="metric", values="value").to_string(float_format="%.3e"))
    print(f"wrote {args.out}")
    if args.plot:
        plot_diagnostics(frame, args.plot)
        print(f"wrote {args.plot}")
    return 0
