"""``bgpo model build`` (a random-weight model and a trained tokenizer) and ``bgpo model info``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import Subparsers


def add_parser(sub: Subparsers) -> None:
    """Register ``bgpo model build`` and ``bgpo model info``."""
    model = sub.add_parser("model", help="build or inspect models")
    model_sub = model.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    build = model_sub.add_parser("build", help="random-weight model from a preset plus a trained tokenizer")
    build.add_argument("--preset", default="nano")
    build.add_argument("--corpus", nargs="*", help="text files to train the tokenizer on (default: a toy corpus)")
    build.add_argument("--vocab-size", type=int, default=96)
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--dtype", default="float32", choices=["float32", "float64", "bfloat16"])
    build.add_argument("--out", type=Path, required=True)
    build.set_defaults(func=run_build)
    info = model_sub.add_parser("info", help="load a model (hub id or directory) and print its ids and size")
    info.add_argument("model")
    info.set_defaults(func=run_info)


def run_build(args: argparse.Namespace) -> int:
    """Train a tokenizer on the corpus, build the preset with random weights, save both."""
    import torch

    from ..models import build_model, train_tokenizer
    from ..testing import TOY_CORPUS

    if args.corpus:
        texts = [line for path in args.corpus for line in Path(path).read_text().splitlines() if line.strip()]
    else:
        texts = TOY_CORPUS * 4
    tokenizer = train_tokenizer(texts, vocab_size=args.vocab_size)
    model = build_model(args.preset, tokenizer, seed=args.seed, dtype=getattr(torch, args.dtype))
    model.save_pretrained(args.out)
    print(f"saved {args.preset} ({model.num_parameters():,} parameters, vocabulary {len(tokenizer)}) to {args.out}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    """Load a model and print its size, special ids and dtype as JSON."""
    from ..models import load_model

    model = load_model(args.model)
    info = {
        "parameters": model.num_parameters(),
        "vocab_size": model.vocab_size,
        "mask_token_id": model.mask_token_id,
        "eos_token_id": model.eos_token_id,
        "eot_token_id": model.eot_token_id,
        "pad_token_id": model.pad_token_id,
        "dtype": str(next(model.parameters()).dtype),
    }
    print(json.dumps(info, indent=2))
    return 0
