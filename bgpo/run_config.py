"""Run configuration of ``bgpo train`` and ``bgpo sft``: typed sections loaded from YAML plus overrides.

Precedence, lowest first: the dataclass defaults, the YAML file, the method variant's ``train`` settings
(``configs/methods/<variant>.yaml``, e.g. ``mini_batches: 2`` for off-policy), then ``--set key=value``
overrides on the command line (values parsed as YAML, keys dotted: ``train.learning_rate=1e-4``).

Every mistake is a :class:`~bgpo.config.ConfigError` whose one-line message names the full key path, the bad
value and the valid choices (or "did you mean"), before any model is loaded: unknown keys at every level,
types (a section must be a mapping, ``n_t`` an integer, ``data.tasks`` a list of strings), values and
cross-field rules in each section's ``__post_init__`` (the block length divides the generation length,
``prompts_per_step`` is a multiple of ``mini_batches``), the method's own config (``method.config``, checked
by the method's config class) and the task names and options of ``data``. The Snakemake pipeline runs the
same checks on its config (:mod:`bgpo.pipeline_config`). The resolved configuration is written next to a
run's outputs (``config.yaml``).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .advantages import ADVANTAGE_KINDS
from .config import ConfigError, relocate, require, require_choice, unknown_name_error
from .sampler import SamplerConfig

if typing.TYPE_CHECKING:
    from .variants import MethodVariant

T = TypeVar("T")
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
DTYPES = ("float32", "float64", "bfloat16", "float16")
LR_SCHEDULES = ("constant", "warmup")
# What a run does when a loss, gradient norm or reward is NaN or infinite (bgpo.training.guards).
NONFINITE_ACTIONS = ("stop", "skip")


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
        require(self.r >= 1, f"model.lora.r must be ≥ 1, got {self.r}")
        require(self.alpha >= 1, f"model.lora.alpha must be ≥ 1, got {self.alpha}")
        require(0 <= self.dropout < 1, f"model.lora.dropout must lie in [0, 1), got {self.dropout}")
        require(bool(self.target_modules), "model.lora.target_modules must list at least one module name")


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
        require(
            self.eval_tasks is None or len(self.eval_tasks) >= 1,
            "data.eval_tasks must list at least one task, or be null (= data.tasks); to evaluate nothing during "
            "training set train.eval_every: 0",
        )
        require(
            self.eval_limit is None or self.eval_limit >= 1,
            f"data.eval_limit must be ≥ 1 or null, got {self.eval_limit}",
        )

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
        keep_checkpoints: how many recent checkpoints to keep (older ones are deleted after each save).
        on_nonfinite: what a step with a NaN or infinite loss, gradient norm or reward does: ``stop`` (the run
            ends with a message naming the step, the quantity and the last good checkpoint) or ``skip`` (no
            optimiser step for it; the log counts it in ``nonfinite_skipped``).
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
    on_nonfinite: str = "stop"

    def __post_init__(self) -> None:
        require(self.steps >= 1, f"train.steps must be ≥ 1, got {self.steps}")
        require(self.group_size >= 2, f"train.group_size must be ≥ 2 (group advantages), got {self.group_size}")
        require(self.mini_batches >= 1, f"train.mini_batches must be ≥ 1, got {self.mini_batches}")
        require(self.prompts_per_step >= 1, f"train.prompts_per_step must be ≥ 1, got {self.prompts_per_step}")
        require(
            self.prompts_per_step % self.mini_batches == 0,
            f"train.prompts_per_step ({self.prompts_per_step}) must be a multiple of train.mini_batches "
            f"({self.mini_batches})",
        )
        require(self.micro_batch_size >= 1, f"train.micro_batch_size must be ≥ 1, got {self.micro_batch_size}")
        require(
            self.rollout_batch_size is None or self.rollout_batch_size >= 1,
            f"train.rollout_batch_size must be ≥ 1 or null, got {self.rollout_batch_size}",
        )
        require(
            math.isfinite(self.learning_rate) and self.learning_rate > 0,
            f"train.learning_rate must be a finite number > 0, got {self.learning_rate}",
        )
        require(self.weight_decay >= 0, f"train.weight_decay must be ≥ 0, got {self.weight_decay}")
        require(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            f"train.betas must be two numbers in [0, 1), got {self.betas}",
        )
        require(self.grad_clip > 0, f"train.grad_clip must be > 0, got {self.grad_clip}")
        require_choice(self.lr_schedule, LR_SCHEDULES, "train.lr_schedule")
        require(self.warmup_steps >= 0, f"train.warmup_steps must be ≥ 0, got {self.warmup_steps}")
        require_choice(self.advantage, ADVANTAGE_KINDS, "train.advantage")
        for key in ("eval_every", "save_every"):
            require(getattr(self, key) >= 0, f"train.{key} must be ≥ 0 (0 disables), got {getattr(self, key)}")
        require(self.eval_batch_size >= 1, f"train.eval_batch_size must be ≥ 1, got {self.eval_batch_size}")
        require(self.keep_checkpoints >= 1, f"train.keep_checkpoints must be ≥ 1, got {self.keep_checkpoints}")
        require_choice(self.on_nonfinite, NONFINITE_ACTIONS, "train.on_nonfinite")


# SamplerConfig fields left out of RunSettings.digest at these values (see there).
_HASH_NEUTRAL_SAMPLER_DEFAULTS = {"cache": "none", "cache_refresh": "block"}


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

    def digest(self, *, location: bool = True) -> str:
        """A short hash of the resolved configuration (the ``config_hash`` of results).

        ``location=False`` leaves ``output_dir`` out: a run copied to another folder resumes there.
        """
        return config_digest(self.to_dict(), location=location)


def config_digest(data: dict[str, Any], *, location: bool = True) -> str:
    """:meth:`RunSettings.digest` of a resolved configuration as plain data (``RunSettings.to_dict()``, or the
    ``config.yaml`` a run wrote)."""
    data = copy.deepcopy(data)
    if not location:
        data.pop("output_dir", None)
    # Sampler options added after runs were made (issue 19's KV cache) count only when set: an exact-decoding
    # run keeps the hash it had, so it still resumes from its checkpoints and its results still match.
    for section in ("rollout", "eval_sampler"):
        sampler = data.get("train", {}).get(section) or {}
        for key, default in _HASH_NEUTRAL_SAMPLER_DEFAULTS.items():
            if sampler.get(key) == default:
                del sampler[key]
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------- building
# Sections whose own messages name their keys from a fixed root (see bgpo.config.relocate).
# The pipeline builds TrainSettings at config.train, so even "train." is relocated.
_MESSAGE_ROOTS: dict[type, str] = {
    SamplerConfig: "sampler",
    LoraSettings: "model.lora",
    ModelSettings: "model",
    DataSettings: "data",
    TrainSettings: "train",
}


def build(cls: type[T], data: Mapping[str, Any] | None, where: str) -> T:
    """Build dataclass ``cls`` from a mapping, recursively: unknown keys, types and values are checked at every
    level, and every error names its full key path (``where`` is the path of ``data``, "" at the top)."""
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(
            f"{where or 'the config'} must be a mapping of settings, got {data!r:.60} ({type(data).__name__})"
        )
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in fields:
            raise unknown_name_error("key", str(key), fields, where)
        value = check_value(value, hints[key], path)
        nested = _dataclass_in(hints[key])
        if nested is not None and isinstance(value, Mapping):
            factory = fields[key].default_factory
            if factory is not dataclasses.MISSING:  # partial overrides keep the section's own defaults
                value = merge(dataclasses.asdict(factory()), value)
            values[key] = build(nested, value, path)
        else:
            values[key] = value
    for key, f in fields.items():  # a required section that is absent: its own checks say what it needs
        nested = _dataclass_in(hints[key])
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if key not in values and nested is not None and required:
            values[key] = build(nested, {}, f"{where}.{key}" if where else key)
    try:
        return cls(**values)
    except ConfigError as err:
        message = str(err)
        if cls in _MESSAGE_ROOTS:
            message = relocate(message, _MESSAGE_ROOTS[cls], where)
        raise ConfigError(
            message if where and message.startswith(where) else f"{where or 'config'}: {message}"
        ) from None


_SIMPLE = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def check_value(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against the type ``hint`` of the setting at path ``key``; returns it (an int where a float
    is expected becomes a float). Mappings, lists and their elements are checked recursively; dataclass
    sections must be mappings (their keys are checked when they are built)."""
    if hint is Any:
        return value
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    options = [o for o in (typing.get_args(hint) if union else (hint,)) if o is not type(None)]
    if value is None:
        if not union or len(options) == len(typing.get_args(hint)):
            raise ConfigError(f"{key} may not be null; it must be {_describe(hint)}")
        return None
    for option in options:
        try:
            return _check_one(value, option, key)
        except _Mismatch:
            continue
    raise ConfigError(f"{key} must be {_describe(hint)}, got {value!r:.60} ({type(value).__name__})")


class _Mismatch(Exception):
    """The value is not of this type (the caller tries the next one of a union, or reports)."""


def _check_one(value: Any, hint: Any, key: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise _Mismatch
        return value
    if origin is list:
        if not isinstance(value, list):
            raise _Mismatch
        return [check_value(v, args[0] if args else Any, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise _Mismatch
        inner = args[1] if len(args) == 2 else Any
        return {k: check_value(v, inner, f"{key}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str) and _FLOAT.fullmatch(value):  # YAML 1.1 reads 1e-4 as text
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint in (bool, str) and isinstance(value, hint):
        return value
    raise _Mismatch


def _describe(hint: Any) -> str:
    """A type hint in words: ``list[str]`` → "a list of strings"."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    if union:
        args = typing.get_args(hint)
        words = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(words) + (" or null" if type(None) in args else "")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        keys = ", ".join(f.name for f in dataclasses.fields(hint) if f.init)
        return f"a mapping of settings ({keys})"
    if origin is list:
        inner = _describe(args[0]) if args else "anything"
        return "a list" if inner == "anything" else f"a list of {_plural(inner)}"
    if origin is dict:
        inner = _describe(args[1]) if len(args) == 2 else "anything"
        return "a mapping" if inner == "anything" else f"a mapping of names to {_plural(inner)}"
    return _SIMPLE.get(hint, "anything")


def _plural(words: str) -> str:
    for article in ("an ", "a "):
        if words.startswith(article):
            noun = words[len(article) :]
            return {"integer": "integers", "number": "numbers", "string": "strings"}.get(noun, noun + "s")
    return {"true or false": "booleans", "anything": "values"}.get(words, words)


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
        if not all(parts):
            raise ConfigError(f"override {pair!r}: the key {key!r} has an empty part; write e.g. train.steps=10")
        for i, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(
                    f"override {pair!r} sets a key inside {'.'.join(parts[: i + 1])}, which another override "
                    f"set to {node!r:.40}; give one or the other"
                )
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigError(f"override {pair!r}: the value is not valid YAML ({problem})") from None
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
        loaded = read_yaml(path, "run config")
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a run config is a mapping with sections model, data, method, train")
        data = loaded
    cli = parse_overrides(overrides)
    # Sections are checked before they are merged: a merge would silently replace `train: 5` by a mapping.
    hints = typing.get_type_hints(RunSettings)
    for source in (data, cli):
        for key, value in source.items():
            if key in hints:
                check_value(value, hints[key], key)
    method = merge(data, cli).get("method") or {}
    variant_name = check_value(method.get("variant", MethodSettings().variant), str, "method.variant")
    variant = load_variant(variant_name)
    data = merge(merge(data, {"train": variant.train}), cli)
    settings = build(RunSettings, data, "")
    check_method_config(variant, settings.method.config, "method.config")
    check_data_settings(settings.data, "data")
    return settings


def read_yaml(path: str | Path, what: str) -> Any:
    """The content of a YAML file; a missing file or a syntax error is a one-line :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such {what} file")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None


def check_method_config(variant: MethodVariant, overrides: Mapping[str, Any], where: str) -> None:
    """Check ``overrides`` of a variant's method config as the trainer will build them.

    Unknown keys, types (``n_t`` an integer) and the method's own value checks; every message names the key
    under ``where`` (``method.config`` in a run config, ``config.method_config.bgpo`` in the pipeline).
    """
    from .methods import get_method_class

    if not isinstance(overrides, Mapping):
        raise ConfigError(f"{where} must be a mapping of {variant.method}'s settings, got {overrides!r:.60}")
    config_cls = get_method_class(variant.method).Config
    hints = typing.get_type_hints(config_cls)
    fields = [f.name for f in dataclasses.fields(config_cls) if f.init]
    for key, value in overrides.items():
        if key not in fields:
            error = unknown_name_error("key", str(key), fields, f"method ({variant.method})")
            raise ConfigError(f"{where}.{key}: {error}")
        check_value(value, hints[key], f"{where}.{key}")
    try:
        config_cls(**{**variant.config, **overrides})
    except ConfigError as err:
        # The method's messages say "set method.n_t"; here the key is where.n_t.
        message = relocate(str(err), "method", where)
        label = where if where.endswith(variant.name) else f"{where} ({variant.name})"
        raise ConfigError(message if message.startswith(where) else f"{label}: {message}") from None


def check_task_options(name: str, options: Mapping[str, Any], where: str) -> None:
    """Check the types of a task's options against its constructor's annotations (unknown names are left to
    :func:`bgpo.tasks.build_task`, which lists the valid ones)."""
    from .tasks import get_task_class

    try:
        hints = typing.get_type_hints(get_task_class(name).__init__)
    except (NameError, TypeError):  # an annotation that does not resolve: nothing to check against
        return
    for key, value in options.items():
        if key in hints:
            check_value(value, hints[key], f"{where}.{key}")


def check_data_settings(data: DataSettings, where: str) -> None:
    """Task names (with "did you mean") and each task's options, built as the trainer will build them."""
    from .tasks import build_task, task_names
    from .tasks.data import DataError

    names = task_names()
    for key, listed in (("tasks", data.tasks), ("eval_tasks", data.eval_tasks or [])):
        for i, name in enumerate(listed):
            if name not in names:
                raise ConfigError(f"{where}.{key}[{i}]: {unknown_name_error('task', name, names)}")
    for name in data.task_options:
        if name not in names:
            raise ConfigError(f"{where}.task_options: {unknown_name_error('task', name, names)}")
    for name in dict.fromkeys(data.tasks + (data.eval_tasks or [])):
        check_task_options(name, data.options(name), f"{where}.task_options.{name}")
        try:
            task = build_task(name, data_dir=data.data_dir, **data.options(name))
        except (ConfigError, DataError, TypeError) as err:
            raise ConfigError(f"{where}.task_options.{name}: {err}") from None
        if name in data.tasks and "train" not in task.splits:
            raise ConfigError(
                f"{where}.tasks: task {name} has no train split (its splits: {', '.join(task.splits)}); "
                "train on another task and evaluate on this one with data.eval_tasks"
            )
        if name in (data.eval_tasks if data.eval_tasks is not None else data.tasks):
            try:
                task.check_split(data.eval_split)
            except ConfigError as err:
                raise ConfigError(f"{where}.eval_split: {err}") from None


def save_run_settings(settings: RunSettings, path: Path) -> None:
    """Write the resolved configuration as YAML."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(settings.to_dict(), sort_keys=False))
