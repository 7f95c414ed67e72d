"""Run configuration of ``bgpo train`` and ``bgpo sft``: typed sections loaded from YAML plus overrides.

Precedence, lowest first: the dataclass defaults, the YAML file, the method variant's ``train`` settings
(``configs/methods/<variant>.yaml``, e.g. ``mini_batches: 2`` for off-policy), then ``--set key=value``
overrides on the command line (values parsed as YAML, keys dotted: ``train.learning_rate=1e-4``). Unknown
keys are errors that name the key and list the valid ones; values are validated in ``__post_init__``.
The resolved configuration is written next to a run's outputs (``config.yaml``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .advantages import ADVANTAGE_KINDS
from .config import ConfigError, require, require_choice, unknown_name_error
from .sampler import SamplerConfig

T = TypeVar("T")
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
DTYPES = ("float32", "float64", "bfloat16", "float16")
LR_SCHEDULES = ("constant", "warmup")


@dataclass
class LoraSettings:
    """LoRA adapters (peft); d1 trains LoRA r = 128 (SPEC §3). The BGPO paper fine-tunes fully."""

    r: int = 128
    alpha: int = 64
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )

    def __post_init__(self) -> None:
        require(self.r >= 1, f"lora.r must be ≥ 1, got {self.r}; set model.lora.r")


@dataclass
class ModelSettings:
    """The policy to train.

    Attributes:
        path: a hub id (``GSAI-ML/LLaDA-8B-Instruct``) or a directory written by ``save_pretrained``.
        dtype: parameter dtype (bf16 at paper scale, SPEC §2).
        lora: LoRA settings, or null for full fine-tuning (the paper's setting).
        gradient_checkpointing: recompute activations in backward (memory for time).
    """

    path: str | None = None
    dtype: str = "float32"
    lora: LoraSettings | None = None
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        require(self.path is not None, "model.path is required: a hub id or a model directory")
        require_choice(self.dtype, DTYPES, "model.dtype")


@dataclass
class DataSettings:
    """Where prompts come from.

    Attributes:
        tasks: training tasks; prompts are drawn from the union of their ``train`` splits.
        eval_tasks: tasks evaluated during training (default: ``tasks``).
        data_dir: folder with the original benchmark files (null: the hub, or generated tasks).
        task_options: per-task options, e.g. ``{gen_sudoku: {min_blanks: 6}}``.
        eval_split: the split evaluated during training.
        eval_limit: evaluate only the first examples (null: all).
    """

    tasks: list[str] = field(default_factory=list)
    eval_tasks: list[str] | None = None
    data_dir: str | None = None
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    eval_split: str = "test"
    eval_limit: int | None = None

    def __post_init__(self) -> None:
        require(bool(self.tasks), "data.tasks must list at least one task (bgpo tasks lists them)")

    def options(self, task: str) -> dict[str, Any]:
        """The options of ``task``."""
        return dict(self.task_options.get(task) or {})


@dataclass
class MethodSettings:
    """The RL method: a variant of ``configs/methods/`` plus config overrides."""

    variant: str = "bgpo"
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainSettings:
    """The RL loop (SPEC §2, Table 5 values as defaults where the paper gives them).

    Attributes:
        steps: rollout batches (Table 5: 700 math, 560 Countdown, 400 Sudoku).
        prompts_per_step: prompts per rollout batch (16).
        group_size: responses per prompt, G (8).
        mini_batches: optimiser steps per rollout batch (1 on-policy; 2 for BGPO off-policy, SPEC §2).
        micro_batch_size: responses per forward pass (memory only; the result does not change).
        rollout_batch_size: prompts decoded per sampler call (null: all of this process's at once).
        learning_rate: AdamW learning rate (5e-7 at paper scale).
        weight_decay: AdamW weight decay (0.01).
        betas: AdamW betas (not given by the paper; PyTorch defaults).
        grad_clip: gradient-norm clipping (1.0).
        lr_schedule: ``constant`` (the paper) or ``warmup`` (linear warm-up, then constant).
        warmup_steps: optimiser steps of warm-up.
        advantage: ``grpo`` (SPEC §1), ``mean`` (d1) or ``loo``.
        seed: the root of every seed of the run.
        rollout: the sampler of rollouts (temperature 0.6, SPEC §2; Table 5 lengths and steps).
        eval_sampler: the sampler of evaluations (greedy, SPEC §2).
        eval_every: evaluate every this many steps (20, SPEC §4); 0 disables.
        eval_at_start: also evaluate before the first step.
        eval_batch_size: prompts per evaluation decoding batch.
        save_every: checkpoint every this many steps; 0 disables.
        keep_checkpoints: how many recent checkpoints to keep.
    """

    steps: int = 700
    prompts_per_step: int = 16
    group_size: int = 8
    mini_batches: int = 1
    micro_batch_size: int = 8
    rollout_batch_size: int | None = None
    learning_rate: float = 5e-7
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    grad_clip: float = 1.0
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    advantage: str = "grpo"
    seed: int = 0
    rollout: SamplerConfig = field(
        default_factory=lambda: SamplerConfig(gen_length=256, block_length=32, steps=128, temperature=0.6)
    )
    eval_sampler: SamplerConfig = field(
        default_factory=lambda: SamplerConfig(gen_length=256, block_length=32, steps=256, temperature=0.0)
    )
    eval_every: int = 20
    eval_at_start: bool = False
    eval_batch_size: int = 16
    save_every: int = 20
    keep_checkpoints: int = 2

    def __post_init__(self) -> None:
        require(self.steps >= 1, f"train.steps must be ≥ 1, got {self.steps}")
        require(self.group_size >= 2, f"train.group_size must be ≥ 2 (group advantages), got {self.group_size}")
        require(self.mini_batches >= 1, f"train.mini_batches must be ≥ 1, got {self.mini_batches}")
        require(
            self.prompts_per_step % self.mini_batches == 0,
            f"train.prompts_per_step ({self.prompts_per_step}) must be a multiple of train.mini_batches "
            f"({self.mini_batches})",
        )
        require(self.micro_batch_size >= 1, f"train.micro_batch_size must be ≥ 1, got {self.micro_batch_size}")
        require(self.learning_rate > 0, f"train.learning_rate must be > 0, got {self.learning_rate}")
        require(len(self.betas) == 2, f"train.betas must have two values, got {self.betas}")
        require(self.grad_clip > 0, f"train.grad_clip must be > 0, got {self.grad_clip}")
        require_choice(self.lr_schedule, LR_SCHEDULES, "train.lr_schedule")
        require_choice(self.advantage, ADVANTAGE_KINDS, "train.advantage")
        require(self.keep_checkpoints >= 1, f"train.keep_checkpoints must be ≥ 1, got {self.keep_checkpoints}")


@dataclass
class RunSettings:
    """A whole ``bgpo train`` run."""

    model: ModelSettings
    data: DataSettings
    method: MethodSettings = field(default_factory=MethodSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    output_dir: str = "runs/run"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (YAML-ready)."""
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """A short hash of the resolved configuration (the ``config_hash`` of results)."""
        text = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------- building
def build(cls: type[T], data: Mapping[str, Any] | None, where: str) -> T:
    """Build dataclass ``cls`` from a mapping, recursively, rejecting unknown keys at every level."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in fields:
            raise unknown_name_error("key", key, fields, where)
        value = _check_type(value, hints[key], f"{where}.{key}" if where else key)
        nested = _dataclass_in(hints[key])
        if nested is not None and isinstance(value, Mapping):
            factory = fields[key].default_factory
            if factory is not dataclasses.MISSING:  # partial overrides keep the section's own defaults
                value = merge(dataclasses.asdict(factory()), value)
            values[key] = build(nested, value, f"{where}.{key}" if where else key)
        else:
            values[key] = value
    try:
        return cls(**values)
    except ConfigError as err:
        raise ConfigError(f"{where or 'config'}: {err}") from None
    except TypeError as err:
        raise ConfigError(f"{where or 'config'}: {err}") from None


_SIMPLE = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _check_type(value: Any, hint: Any, key: str) -> Any:
    """Check (and for int → float, convert) a value against a simple type hint; other hints pass."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    options = typing.get_args(hint) if union else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"{key} may not be null")
    simple = [o for o in options if o in _SIMPLE]
    if not simple or len(simple) != len([o for o in options if o is not type(None)]):
        return value  # containers and dataclasses are checked where they are built
    for kind in simple:
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind is float and isinstance(value, str) and _FLOAT.fullmatch(value):  # YAML 1.1 reads 1e-4 as text
            return float(value)
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind in (bool, str) and isinstance(value, kind):
            return value
    wanted = " or ".join(_SIMPLE[k] for k in simple)
    raise ConfigError(f"{key} must be {wanted}, got {value!r} ({type(value).__name__})")


def _dataclass_in(hint: Any) -> type | None:
    if dataclasses.is_dataclass(hint):
        return hint  # type: ignore[return-value]
    for arg in typing.get_args(hint):
        if dataclasses.is_dataclass(arg):
            return arg  # type: ignore[return-value]
    return None


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["train.steps=10", "data.tasks=[gen_sudoku]"]`` → a nested dict (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r} must look like section.key=value (e.g. train.steps=10)")
        key, raw = pair.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        value = yaml.safe_load(raw)
        if isinstance(value, str) and _FLOAT.fullmatch(value):  # YAML 1.1 reads "3e-3" as a string
            value = float(value)
        node[parts[-1]] = value
    return out


def merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: ``update`` wins; nested mappings merge."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def load_run_settings(path: str | Path | None, overrides: Sequence[str] = ()) -> RunSettings:
    """Load a run config: defaults < YAML < the method variant's train settings < ``--set`` overrides."""
    from .variants import load_variant

    data: dict[str, Any] = {}
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"{path}: no such run config file")
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a run config is a mapping with sections model, data, method, train")
        data = loaded
    cli = parse_overrides(overrides)
    variant_name = merge(data, cli).get("method", {}).get("variant", MethodSettings().variant)
    variant = load_variant(variant_name)
    data = merge(merge(data, {"train": variant.train}), cli)
    return build(RunSettings, data, "")


def save_run_settings(settings: RunSettings, path: Path) -> None:
    """Write the resolved configuration as YAML."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(settings.to_dict(), sort_keys=False))
