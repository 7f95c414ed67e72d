"""Checks of the Snakemake pipeline's config (``config/*.yaml``), run by ``workflow/rules/common.smk`` before
any job, so a mistake costs seconds and names its key.

The checks are those of ``bgpo train --set`` (:mod:`bgpo.run_config`) applied to the pipeline's layout, and
every failure is one :class:`~bgpo.config.ConfigError` line naming the full key path (``config.tasks.sudoku.
block_length``), the bad value and the valid choices or the closest valid name:

1. unknown keys in closed sections (with "did you mean");
2. the JSON schema (``workflow/schemas/config.schema.yaml``): types and ranges;
3. names: method variants, tasks, benchmarks and the tables' references to them;
4. block schedules: each task's ``block_length`` divides its ``response_length`` and ``rollout_steps`` is a
   multiple of the number of blocks, and the same for each benchmark's decoding;
5. each method variant's config overrides (``method_config``, global and per task) checked by the method's own
   config class, as the trainer will build them (``n_t`` a positive integer), and the methods of
   ``memory_budget`` have an ``n_t`` to choose;
6. the trainer settings (``train`` and each task's ``train``) built as ``TrainSettings`` with each variant's
   own train settings (``mini_batches: 2`` for off-policy), and each task's options;
7. combinations: evaluation in the training job needs ``launch: bgpo``; a hub model needs ``model.path``;
8. the evaluation protocol (:mod:`bgpo.protocols`) exists and covers every benchmark.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .config import ConfigError, relocate, require, require_choice, suggest, unknown_name_error


def check_pipeline_config(config: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Raise a one-line :class:`ConfigError` for the first mistake in the pipeline config (see the module)."""
    check_keys(config, schema)
    check_schema(config, schema)
    _check_names(config)
    _check_block_schedules(config)
    _check_method_configs(config)
    _check_train(config)
    _check_task_options(config)
    if config.get("evaluate", {}).get("in_training_job") and config.get("launch", "bgpo") != "bgpo":
        raise ConfigError(
            f"config.evaluate.in_training_job: needs launch: bgpo (one process), not {config['launch']!r}; a "
            "multi-process launch evaluates in separate jobs (set it to false)"
        )
    if config["model"]["source"] == "hub" and not config["model"].get("path"):
        raise ConfigError("config.model.path: set a hub id or directory when model.source is hub")
    _check_protocol(config)


def _check_protocol(config: Mapping[str, Any]) -> None:
    """``evaluate.protocol`` is a named protocol (or ``custom``) that covers every benchmark's task."""
    from .protocols import CUSTOM, PROTOCOLS

    protocol = config.get("evaluate", {}).get("protocol", CUSTOM)
    if protocol != CUSTOM and protocol not in PROTOCOLS:
        raise unknown_name_error("protocol", protocol, [*PROTOCOLS, CUSTOM], "config.evaluate.protocol")
    for key, spec in config["benchmarks"].items():
        if protocol != CUSTOM and spec["task"] not in PROTOCOLS[protocol].benchmarks:
            raise ConfigError(
                f"config.benchmarks.{key}: protocol {protocol} does not cover task {spec['task']!r}; set "
                f"config.evaluate.protocol to {CUSTOM} or drop the benchmark"
            )


def check_keys(data: Any, schema: Mapping[str, Any], where: str = "config", defs: Mapping | None = None) -> None:
    """Unknown keys in closed sections (``additionalProperties: false``): name the key, a suggestion and the
    valid keys."""
    defs = schema.get("$defs", {}) if defs is None else defs
    if isinstance(schema, Mapping) and schema.get("$ref", "").startswith("#/$defs/"):
        schema = defs[schema["$ref"].removeprefix("#/$defs/")]
    if not isinstance(data, Mapping) or not isinstance(schema, Mapping):
        return
    props = schema.get("properties", {})
    if schema.get("additionalProperties") is False:
        for key in data:
            if key not in props:
                raise unknown_name_error("key", str(key), props, where)
    for key, value in data.items():
        if key in props:
            check_keys(value, props[key], f"{where}.{key}", defs)
        elif isinstance(schema.get("additionalProperties"), Mapping):
            check_keys(value, schema["additionalProperties"], f"{where}.{key}", defs)


_TYPES = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}


def check_schema(config: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Validate against the JSON schema; the most relevant error becomes one line naming the key path."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return
    path = "config" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    value, rule, bound = error.instance, error.validator, error.validator_value
    shown = f"{value!r:.60}"
    if rule == "type":
        kinds = [bound] if isinstance(bound, str) else list(bound)
        message = f"{path} must be {' or '.join(_TYPES.get(k, k) for k in kinds)}, got {shown}"
    elif rule in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        sign = {"minimum": "≥", "exclusiveMinimum": ">", "maximum": "≤", "exclusiveMaximum": "<"}[rule]
        message = f"{path} must be {sign} {bound}, got {shown}"
    elif rule == "enum":
        message = (
            f"{path} must be one of {', '.join(map(repr, bound))}, got {shown}{suggest(str(value), map(str, bound))}"
        )
    elif rule == "required":
        missing = [key for key in bound if key not in value]
        message = f"{path}: missing key {missing[0]!r} (required: {', '.join(bound)})"
    elif rule == "minItems":
        message = f"{path} must list at least {bound} item{'s' if bound > 1 else ''}"
    elif rule == "minProperties":
        message = f"{path} must have at least {bound} entr{'ies' if bound > 1 else 'y'}"
    else:
        message = f"{path}: {error.message}"
    raise ConfigError(message)


def _variants_used(config: Mapping[str, Any]) -> list[str]:
    tables = config.get("tables", {})
    names = list(config["methods"]) + list(config.get("extra_methods", []))
    for spec in tables.values():
        names += [spec["variant"]] if "variant" in spec else []
        names += list(spec.get("variants", []))
    return list(dict.fromkeys(names))


def _check_names(config: Mapping[str, Any]) -> None:
    from .tasks import task_names
    from .variants import variant_names

    variants, tasks = variant_names(), task_names()

    def variant(name: str, where: str) -> None:
        if name not in variants:
            raise ConfigError(f"{where}: {unknown_name_error('method variant', name, variants)} (configs/methods/)")

    for i, name in enumerate(config["methods"]):
        variant(name, f"config.methods[{i}]")
    for i, name in enumerate(config.get("extra_methods", [])):
        variant(name, f"config.extra_methods[{i}]")
    for name in config.get("method_config", {}):
        variant(name, "config.method_config")
    for i, name in enumerate(config.get("memory_budget", {}).get("methods", [])):
        variant(name, f"config.memory_budget.methods[{i}]")
    for key, spec in config["tasks"].items():
        for i, name in enumerate(spec["tasks"]):
            if name not in tasks:
                raise ConfigError(f"config.tasks.{key}.tasks[{i}]: {unknown_name_error('task', name, tasks)}")
        for i, bench in enumerate(spec["benchmarks"]):
            if bench not in config["benchmarks"]:
                raise ConfigError(
                    f"config.tasks.{key}.benchmarks[{i}]: {bench!r} is not a key of config.benchmarks"
                    f"{suggest(bench, config['benchmarks'])}; valid: {', '.join(config['benchmarks'])}"
                )
        for name in spec.get("method_config", {}):
            variant(name, f"config.tasks.{key}.method_config")
    for key, spec in config["benchmarks"].items():
        if spec["task"] not in tasks:
            raise ConfigError(f"config.benchmarks.{key}.task: {unknown_name_error('task', spec['task'], tasks)}")
    for name, spec in config.get("tables", {}).items():
        for key in ([spec["task"]] if "task" in spec else []) + list(spec.get("tasks", [])):
            if key not in config["tasks"]:
                raise ConfigError(
                    f"config.tables.{name}: unknown training task {key!r}{suggest(key, config['tasks'])}; valid: "
                    f"{', '.join(config['tasks'])}"
                )
        for name_ in [spec["variant"]] if "variant" in spec else []:
            variant(name_, f"config.tables.{name}.variant")
        for i, name_ in enumerate(spec.get("variants", [])):
            variant(name_, f"config.tables.{name}.variants[{i}]")
    for i, pair in enumerate(config.get("tables", {}).get("paired", {}).get("pairs", [])):
        for name_ in pair:
            if name_ not in config["methods"]:
                raise ConfigError(
                    f"config.tables.paired.pairs[{i}]: {name_!r} is not one of Table 1's methods "
                    f"({', '.join(config['methods'])}){suggest(name_, config['methods'])}"
                )


def _check_block_schedules(config: Mapping[str, Any]) -> None:
    from .sampler import block_schedule_problem

    for key, spec in config["tasks"].items():
        problem = block_schedule_problem(
            spec["response_length"],
            spec["block_length"],
            spec["rollout_steps"],
            keys=("response_length", "block_length", "rollout_steps"),
            root=f"config.tasks.{key}.",
        )
        if problem:
            raise ConfigError(f"config.tasks.{key}: {problem}")
    for key, spec in config["benchmarks"].items():
        problem = block_schedule_problem(
            spec["gen_length"], spec["block_length"], spec["steps"], root=f"config.benchmarks.{key}."
        )
        if problem:
            raise ConfigError(f"config.benchmarks.{key}: {problem}")


def _check_method_configs(config: Mapping[str, Any]) -> None:
    from .run_config import check_method_config
    from .variants import load_variant

    shared = config.get("method_config", {})
    for i, name in enumerate(config.get("memory_budget", {}).get("methods", [])):
        # The budget chooses n_t, so a method without one cannot be listed.
        if "n_t" not in _config_fields(load_variant(name).method):
            raise ConfigError(
                f"config.memory_budget.methods[{i}]: {name} has no MC sample size n_t for the budget to choose"
            )
    for name, overrides in shared.items():
        check_method_config(load_variant(name), overrides, f"config.method_config.{name}")
    for key, spec in config["tasks"].items():
        for name, overrides in spec.get("method_config", {}).items():
            # What the task's runs use: the shared overrides, then the task's own.
            check_method_config(
                load_variant(name), {**shared.get(name, {}), **overrides}, f"config.tasks.{key}.method_config.{name}"
            )


def _config_fields(method: str) -> set[str]:
    import dataclasses

    from .methods import get_method_class

    return {f.name for f in dataclasses.fields(get_method_class(method).Config)}


# Keys of the pipeline's train sections that are not trainer settings (train_overrides in common.smk).
_PIPELINE_ONLY = ("temperature", "checkpoint", "rollout_cache", "rollout_threshold")


def _check_train(config: Mapping[str, Any]) -> None:
    from .run_config import TrainSettings, build, merge
    from .variants import load_variant

    variants = [load_variant(name) for name in _variants_used(config)]
    valid = {f.name for f in dataclasses.fields(TrainSettings)} | set(_PIPELINE_ONLY)
    for key, spec in [(None, {}), *config["tasks"].items()]:
        own = spec.get("train", {})
        if key is not None and not own:
            continue
        where = f"config.tasks.{key}.train" if key is not None else "config.train"
        if not isinstance(own, Mapping):
            raise ConfigError(f"{where} must be a mapping of trainer settings, got {own!r:.60}")
        for name in own:  # the pipeline's own keys are valid here too (and suggested for their typos)
            if name not in valid:
                raise unknown_name_error("key", name, valid, where)
        merged = merge(config["train"], own)
        _check_pipeline_only(merged, where)
        settings = {k: v for k, v in merged.items() if k not in _PIPELINE_ONLY}
        for variant in variants:
            try:
                build(TrainSettings, merge(variant.train, settings), where)
            except ConfigError as err:
                message = relocate(str(err), "train", where)
                if variant.train:
                    message += f" (with method variant {variant.name}'s train settings {variant.train})"
                raise ConfigError(message) from None


def _check_pipeline_only(train: Mapping[str, Any], where: str) -> None:
    """The pipeline's own train keys (:data:`_PIPELINE_ONLY`), as their users will read them, named by their
    pipeline keys: the rollout temperature, the checkpoint evaluations read, the rollout speed-ups."""
    from .kv_cache import CACHE_MODES

    temperature = train.get("temperature", 0.6)
    require(
        isinstance(temperature, (int, float)) and not isinstance(temperature, bool) and temperature >= 0,
        f"{where}.temperature must be a number ≥ 0, got {temperature!r}",
    )
    require_choice(train.get("checkpoint", "final"), ("final", "best"), f"{where}.checkpoint")
    require_choice(train.get("rollout_cache", "none"), CACHE_MODES, f"{where}.rollout_cache")
    threshold = train.get("rollout_threshold")
    require(
        threshold is None or (isinstance(threshold, (int, float)) and 0 < threshold <= 1),
        f"{where}.rollout_threshold must lie in (0, 1] or be null, got {threshold!r}",
    )


def _check_task_options(config: Mapping[str, Any]) -> None:
    from .run_config import check_task_options
    from .tasks import build_task, task_names
    from .tasks.data import DataError

    names = task_names()
    for name, options in config.get("task_options", {}).items():
        if name not in names:
            raise ConfigError(f"config.task_options: {unknown_name_error('task', name, names)}")
        where = f"config.task_options.{name}"
        if not isinstance(options, Mapping):
            raise ConfigError(f"{where} must be a mapping of the task's options, got {options!r:.60}")
        check_task_options(name, options, where)
        try:
            build_task(name, data_dir=config.get("data_dir"), **options)
        except (ConfigError, DataError, TypeError) as err:
            raise ConfigError(f"{where}: {err}") from None
