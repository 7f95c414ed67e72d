"""``bgpo sft`` (masked-diffusion SFT of a base) and ``bgpo train`` (one RL run, any registered method)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import Subparsers, load_yaml


def add_parser(sub: Subparsers) -> None:
    """Register ``bgpo sft`` and ``bgpo train``."""
    sft = sub.add_parser("sft", help="masked-diffusion SFT on task demonstrations")
    sft.add_argument("--config", type=Path, help="YAML with the settings of bgpo.sft.SFTSettings")
    sft.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides, e.g. steps=100")
    sft.add_argument("--output-dir", type=Path)
    sft.set_defaults(func=run_sft)

    train = sub.add_parser("train", help="RL training (config file plus overrides)")
    train.add_argument("--config", type=Path, help="YAML with sections model, data, method, train")
    train.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="e.g. train.steps=10 method.variant=vrpo_ol"
    )
    train.add_argument("--output-dir", type=Path)
    start = train.add_mutually_exclusive_group()
    start.add_argument(
        "--resume", action="store_true", help="continue the run in output_dir from its newest intact checkpoint"
    )
    start.add_argument("--overwrite", action="store_true", help="delete what output_dir holds and start again")
    train.set_defaults(func=run_train)


def run_sft(args: argparse.Namespace) -> int:
    """Run SFT from a YAML config plus ``--set`` overrides; print the summary."""
    from ..run_config import build, merge, parse_overrides
    from ..sft import SFTSettings
    from ..sft import run_sft as sft

    data = merge(load_yaml(args.config), parse_overrides(args.set))
    if args.output_dir:
        data["output_dir"] = str(args.output_dir)
    summary = sft(build(SFTSettings, data, "sft"))
    print(json.dumps(summary))
    return 0


def run_train(args: argparse.Namespace) -> int:
    """Run (or resume) one RL run; print the summary."""
    from ..run_config import load_run_settings
    from ..trainer import Trainer
    from ..training.checkpoint import check_output_dir

    overrides = list(args.set) + ([f"output_dir={args.output_dir}"] if args.output_dir else [])
    settings = load_run_settings(args.config, overrides)
    # Before the model is loaded (minutes at paper scale): a folder holding another run is refused at once.
    check_output_dir(
        Path(settings.output_dir),
        resume=args.resume,
        overwrite=args.overwrite,
        config_hash=settings.digest(location=False),
    )
    from ..distributed import shutdown

    summary = Trainer(settings).train(resume=args.resume, overwrite=args.overwrite)
    print(json.dumps(summary))
    shutdown()
    return 0
