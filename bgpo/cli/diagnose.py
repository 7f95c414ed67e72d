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
    diag.add_argument(
        "--repeats", type=int, default=32, help="gradients per setting at the largest n_t, K (paper: 8 at every n_t)"
    )
    diag.add_argument(
        "--allocation",
        choices=["sqrt", "equal"],
        default="sqrt",
        help="repeats at smaller n_t: sqrt = ⌈K·√(max n_t / n_t)⌉ (cheap draws, heavier tails), equal = K",
    )
    diag.add_argument("--golden-n-t", type=int, default=256, help="MC samples of the golden gradient (paper: 256)")
    diag.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples behind each 95%% interval")
    diag.add_argument("--responses", type=int, default=16, help="responses in the fixed batch")
    diag.add_argument("--group-size", type=int, default=8, help="responses per prompt, G")
    diag.add_argument(
        "--prompt-length", type=int, nargs="+", default=[8], help="real prompt tokens; several values: a sweep"
    )
    diag.add_argument(
        "--p-mask-prompt",
        type=float,
        nargs="+",
        help="d1's prompt mask ratio for the methods that have one (diffu-GRPO, wd1, SPG); several values: a sweep",
    )
    diag.add_argument("--length", type=int, default=16, help="response length L")
    diag.add_argument("--seed", type=int, default=0)
    diag.add_argument("--dtype", default="float64", choices=["float64", "float32", "bfloat16"])
    diag.add_argument("--device", default="cpu")
    diag.add_argument("--out", type=Path, default=Path("results/diagnostics/grad_std_bias.csv"))
    diag.add_argument("--plot", type=Path, help="also write the figure here (PNG; the sweep's figure for a sweep)")
    diag.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compute the diagnostics on one fixed batch (or a sweep of them), print them, write the CSV and figure."""
    import time

    import pandas as pd
    import torch

    from ..diagnostics import diagnostic_batches, diagnostics_sweep, gradient_diagnostics, plot_diagnostics, plot_sweep
    from ..models import load_model
    from ..testing import toy_model

    start = time.perf_counter()
    torch.manual_seed(args.seed)  # nothing below draws from the global RNG; this only pins stray kernels
    dtype = getattr(torch, args.dtype)
    if args.model:
        model = load_model(args.model, dtype=dtype, device=args.device)
    else:
        model = toy_model(args.preset, seed=args.seed, dtype=dtype).to(args.device)
    batches = [
        b.to(args.device)
        for b in diagnostic_batches(
            model,
            args.prompt_length,
            responses=args.responses,
            group_size=args.group_size,
            length=args.length,
            seed=args.seed,
        )
    ]
    common = dict(
        repeats=args.repeats,
        allocation=args.allocation,
        golden_n_t=args.golden_n_t,
        seed=args.seed,
        bootstrap=args.bootstrap,
    )
    sweep = len(batches) > 1 or args.p_mask_prompt is not None
    if sweep:
        frame = diagnostics_sweep(model, batches, args.methods, args.n_t, p_mask_prompts=args.p_mask_prompt, **common)
    else:
        frame = gradient_diagnostics(model, batches[0], args.methods, args.n_t, **common)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    index = ["prompt_length", "p_mask_prompt", "method", "n_t"] if sweep else ["method", "n_t"]
    shown = frame[frame.metric.isin(["std", "bias", "bias_corrected", "cosine"])].copy()
    shown["cell"] = [
        f"{v:.3e} [{lo:.2e}, {hi:.2e}]" for v, lo, hi in zip(shown.value, shown.low, shown.high, strict=True)
    ]
    shown = shown.fillna({"p_mask_prompt": -1})  # pivot drops NaN keys; -1 marks "the method has none"
    with pd.option_context("display.width", 250, "display.max_columns", 10):
        print(shown.pivot_table(index=index, columns="metric", values="cell", aggfunc="first").to_string())
    for row in frame[frame.metric == "std_slope"].itertuples():
        where = f" (prompt length {row.prompt_length}, p_mask_prompt {row.p_mask_prompt})" if sweep else ""
        print(
            f"{row.method}{where}: log-log slope of std vs n_t {row.value:.3f}, 95% CI [{row.low:.3f}, {row.high:.3f}]"
        )
    print(f"wrote {args.out} ({time.perf_counter() - start:.1f} s)")
    if args.plot:
        (plot_sweep if sweep else plot_diagnostics)(frame, args.plot)
        print(f"wrote {args.plot}")
    return 0
