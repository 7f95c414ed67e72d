"""``bgpo evaluate``: decode a benchmark with a model, grade it and write its metrics and completions."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import Subparsers, cuda_available, json_option


def add_parser(sub: Subparsers) -> None:
    """Register ``bgpo evaluate``."""
    ev = sub.add_parser("evaluate", help="decode, grade and score a model on tasks")
    ev.add_argument("--model", required=True, help="model directory or hub id (e.g. GSAI-ML/LLaDA-8B-Instruct)")
    ev.add_argument("--tasks", nargs="+", required=True, help="task names (bgpo tasks lists them)")
    ev.add_argument("--data-dir", type=Path, help="folder with the original benchmark files (default: the hub)")
    ev.add_argument("--task-options", help='JSON, e.g. {"gen_countdown": {"max_number": 12}}')
    ev.add_argument("--split", default="test")
    ev.add_argument("--limit", type=int, help="evaluate only this many examples")
    ev.add_argument("--random-subset", action="store_true", help="with --limit, a random subset (seeded)")
    ev.add_argument("--gen-length", type=int, default=256, help="response length (Table 5: 256 or 512)")
    ev.add_argument("--block-length", type=int, default=32, help="decoding block (Table 5: 32)")
    ev.add_argument("--steps", type=int, help="diffusion steps (default: the response length, Table 5 eval)")
    ev.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (pass@1, the paper's evaluation)")
    ev.add_argument("--remasking", default="low_confidence", choices=["low_confidence", "random"])
    ev.add_argument("--batch-size", type=int, default=16)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--device", default="cuda" if cuda_available() else "cpu")
    ev.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="default: as saved")
    ev.add_argument("--out-dir", type=Path, default=Path("results/eval"))
    ev.add_argument("--meta", nargs="*", default=[], metavar="KEY=VALUE", help="extra columns of metrics.csv")
    ev.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate every task; print the metrics."""
    import torch

    from ..evaluation import run_evaluation
    from ..models import load_model
    from ..sampler import SamplerConfig
    from ..tasks import build_task

    model = load_model(args.model, dtype=getattr(torch, args.dtype) if args.dtype else None, device=args.device)
    config = SamplerConfig(
        gen_length=args.gen_length,
        block_length=args.block_length,
        steps=args.steps or args.gen_length,
        temperature=args.temperature,
        remasking=args.remasking,
    )
    options = json_option(args.task_options, "--task-options")
    tasks = [build_task(name, data_dir=args.data_dir, **options.get(name, {})) for name in args.tasks]
    frame = run_evaluation(
        model,
        tasks,
        args.out_dir,
        config,
        split=args.split,
        limit=args.limit,
        random_subset=args.random_subset,
        batch_size=args.batch_size,
        seed=args.seed,
        extra={"model": str(args.model), "seed": args.seed, **dict(kv.split("=", 1) for kv in args.meta)},
    )
    print(frame[["task", "metric", "value", "n", "seconds"]].to_string(index=False, float_format="%.4f"))
    print(f"wrote {args.out_dir}/metrics.csv and one JSONL per task")
    return 0
