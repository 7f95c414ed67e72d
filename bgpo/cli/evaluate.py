"""``bgpo evaluate``: decode a benchmark with a model, grade it and write its metrics and completions."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import Subparsers, cuda_available, json_option, positive_int

# The command line's defaults when no protocol pins the settings (steps default to the length).
DEFAULT_GEN_LENGTH, DEFAULT_BLOCK_LENGTH, DEFAULT_TEMPERATURE = 256, 32, 0.0


def add_parser(sub: Subparsers) -> None:
    """Register ``bgpo evaluate``."""
    ev = sub.add_parser(
        "evaluate",
        help="decode, grade and score a model on tasks",
        description="Decode each task's prompts, grade them, write <task>.jsonl (rescored by `bgpo grade`) and "
        "metrics.csv. --protocol pins the settings of a named protocol; options that contradict it are errors.",
    )
    ev.add_argument("--model", required=True, help="model directory or hub id (e.g. GSAI-ML/LLaDA-8B-Instruct)")
    ev.add_argument("--tasks", nargs="+", required=True, help="task names (bgpo tasks lists them)")
    ev.add_argument("--data-dir", type=Path, help="folder with the original benchmark files (default: the hub)")
    ev.add_argument("--task-options", help='JSON, e.g. {"gen_countdown": {"max_number": 12}}')
    ev.add_argument(
        "--protocol",
        default="custom",
        help="evaluation protocol: bgpo (the paper's Table 5), d1, or custom (the options below; default)",
    )
    ev.add_argument("--split", default="test")
    ev.add_argument("--limit", type=positive_int, help="evaluate only this many examples (≥ 1)")
    ev.add_argument("--random-subset", action="store_true", help="with --limit, a random subset (seeded)")
    ev.add_argument("--gen-length", type=int, help=f"response length (default {DEFAULT_GEN_LENGTH}; Table 5: 256/512)")
    ev.add_argument("--block-length", type=int, help=f"decoding block (default {DEFAULT_BLOCK_LENGTH}; Table 5: 32)")
    ev.add_argument("--steps", type=int, help="diffusion steps (default: the response length, Table 5 eval)")
    ev.add_argument("--temperature", type=float, help="0 = greedy (the default: pass@1, the paper's evaluation)")
    ev.add_argument(
        "--remasking", choices=["low_confidence", "random"], help="default low_confidence (LLaDA's; protocols pin it)"
    )
    ev.add_argument(
        "--cache",
        choices=["none", "prefix", "dual"],
        help="the sampler's block-wise KV cache (default none: exact; named protocols pin none)",
    )
    ev.add_argument("--threshold", type=float, help="confidence-threshold parallel decoding (named protocols: none)")
    ev.add_argument("--batch-size", type=positive_int, default=16)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--device", default="cuda" if cuda_available() else "cpu")
    ev.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="default: as saved")
    ev.add_argument("--out-dir", type=Path, default=Path("results/eval"))
    ev.add_argument("--meta", nargs="*", default=[], metavar="KEY=VALUE", help="extra columns of metrics.csv")
    ev.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate every task; print the metrics."""
    import torch

    from ..config import ConfigError
    from ..evaluation import run_evaluation
    from ..models import load_model
    from ..protocols import EvalSettings, resolve_settings
    from ..sampler import SamplerConfig
    from ..tasks import build_task

    given = {
        "gen_length": args.gen_length,
        "block_length": args.block_length,
        "steps": args.steps,
        "temperature": args.temperature,
        "limit": args.limit,
        "random_subset": True if args.random_subset else None,
        "cache": args.cache,
        "threshold": args.threshold,
        "remasking": args.remasking,
    }
    defaults = EvalSettings(DEFAULT_GEN_LENGTH, DEFAULT_BLOCK_LENGTH, DEFAULT_GEN_LENGTH, DEFAULT_TEMPERATURE)
    # Every task's settings are resolved (and a contradiction reported) before the model is loaded.
    settings = {name: resolve_settings(args.protocol, name, given, defaults) for name in args.tasks}
    options = json_option(args.task_options, "--task-options")
    if not isinstance(options, dict):
        raise ConfigError(f"--task-options must be a JSON object of task names, got {args.task_options!r:.60}")
    for name, value in options.items():
        if not isinstance(value, dict):
            raise ConfigError(f"--task-options.{name} must be a mapping of the task's options, got {value!r:.60}")
    meta = {}
    for item in args.meta:  # before the model loads: a typo here must not cost a model load
        if "=" not in item:
            raise ConfigError(f"--meta takes KEY=VALUE items, got {item!r}")
        key, value = item.split("=", 1)
        meta[key] = value
    tasks = [build_task(name, data_dir=args.data_dir, **options.get(name, {})) for name in args.tasks]
    model = load_model(args.model, dtype=getattr(torch, args.dtype) if args.dtype else None, device=args.device)
    first = settings[args.tasks[0]]
    config = SamplerConfig(
        gen_length=first.gen_length,
        block_length=first.block_length,
        steps=first.steps,
        temperature=first.temperature,
        remasking=first.remasking,
        cache=first.cache,
        threshold=first.threshold,
    )
    frame = run_evaluation(
        model,
        tasks,
        args.out_dir,
        config,
        split=args.split,
        batch_size=args.batch_size,
        seed=args.seed,
        extra={"model": str(args.model), "seed": args.seed, **meta},
        protocol=args.protocol,
        settings=settings,
    )
    print(frame[["task", "metric", "value", "n", "protocol", "seconds"]].to_string(index=False, float_format="%.4f"))
    print(f"wrote {args.out_dir}/metrics.csv and one JSONL per task (bgpo grade TASK FILE rescores it)")
    return 0
