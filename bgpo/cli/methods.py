"""``bgpo methods``: the registered RL methods, their default configs and the named variants."""

from __future__ import annotations

import argparse
import dataclasses
import json

from .common import Subparsers


def add_parser(sub: Subparsers) -> None:
    """Register ``bgpo methods``."""
    methods = sub.add_parser("methods", help="list the registered RL methods, variants and default configs")
    methods.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print every method with its defaults, then every variant."""
    from ..methods import get_method_class, method_names
    from ..variants import load_variant, variant_names

    for name in method_names():
        cls = get_method_class(name)
        defaults = dataclasses.asdict(cls.Config())
        print(f"{name}: {json.dumps(defaults)}")
    print("\nvariants (configs/methods/):")
    for name in variant_names():
        variant = load_variant(name)
        print(f"  {name}: {variant.method} {json.dumps(variant.config)} train={json.dumps(variant.train)}")
    return 0
