"""Model adapters: the one place where the gaps between a loaded model and what this suite drives are bridged.

Real dLLM checkpoints (LLaDA-8B-Instruct, LLaDA-1.5, d1's and DARE's derivatives) load through their own
remote code (``trust_remote_code``, ``auto_map`` in ``config.json``), written for transformers 4.4x. Every
shim here is keyed on what the loaded class or config *lacks*, never on a model's name, and each says which
gap it closes:

* ``post_init``: transformers ≥ 5 fills ``all_tied_weights_keys`` (and other per-class tables) in
  ``PreTrainedModel.post_init``, which LLaDA's ``__init__`` never calls; loading then fails with
  ``no attribute 'all_tied_weights_keys'``. The class's ``__init__`` is wrapped to call it when the instance
  lacks it.
* ``tie_weights``: transformers ≥ 5 calls ``tie_weights(missing_keys=..., recompute_mapping=...)``; a
  class that overrides it without those parameters gets a wrapper that accepts and ignores them.
* ``config.use_cache``: transformers ≥ 5 no longer puts ``use_cache`` on every config, but LLaDA's
  ``forward`` reads it; set to ``False`` (a dLLM re-reads the whole sequence at every step).
* the dtype keyword of ``from_pretrained``: ``dtype=`` from transformers 4.56, ``torch_dtype=`` before;
  and whether ``logits_to_keep`` may be a per-row boolean mask (:data:`MASK_LOGITS_TO_KEEP`).

It also answers capability questions the trainer asks of any model:

* :func:`enable_activation_checkpointing`: LLaDA's own ``set_activation_checkpointing("whole_layer")``
  where the model has it, else Hugging Face's ``gradient_checkpointing_enable``; an error naming the class
  where neither exists.
* :func:`block_class_names`: the transformer blocks FSDP should wrap (from the model's
  ``_no_split_modules``, keeping only classes it really contains, else its repeated blocks), and
  :func:`check_wrap_classes` to validate a configured list before a launch.
"""

from __future__ import annotations

import functools
import inspect
from collections import Counter
from collections.abc import Iterable
from typing import Any

import torch
import transformers
import transformers.modeling_utils
from torch import nn

from .config import ConfigError

# The auto classes tried, in order, to find the class that returns logits.
AUTO_CLASS_KEYS = ("AutoModelForCausalLM", "AutoModelForMaskedLM", "AutoModel")


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


TRANSFORMERS_VERSION = _version_tuple(transformers.__version__)
# Hugging Face models take a 2-D boolean ``logits_to_keep`` (positions differing per row) only where
# transformers has ``slice_logits_to_keep``; before, such a mask breaks their indexing, so the LM head then
# runs on every position and the selection happens afterwards (bgpo.models.DiffusionLM.forward).
MASK_LOGITS_TO_KEEP = hasattr(transformers.modeling_utils, "slice_logits_to_keep")


def dtype_kwarg(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """The ``from_pretrained`` keyword for a parameter dtype in this transformers version."""
    return {"dtype": dtype} if TRANSFORMERS_VERSION >= (4, 56) else {"torch_dtype": dtype}


def remote_class(config: Any, name_or_path: str, *, revision: str | None = None) -> type[nn.Module] | None:
    """The class a checkpoint's ``auto_map`` names for logits, loaded from its remote code; None if it has none.

    The class (and the config's) is registered for its auto class, as loading through ``AutoModel*`` would do,
    so that ``save_pretrained`` copies the remote code beside the weights and the saved model loads again.
    """
    auto_map = getattr(config, "auto_map", None) or {}
    for key in AUTO_CLASS_KEYS:
        if key in auto_map:
            from transformers.dynamic_module_utils import get_class_from_dynamic_module

            reference = auto_map[key]
            if isinstance(reference, (list, tuple)):  # (model, tokenizer) pairs in some configs
                reference = reference[0]
            cls = get_class_from_dynamic_module(reference, str(name_or_path), revision=revision)
            cls.register_for_auto_class(key)
            if "AutoConfig" in auto_map:
                type(config).register_for_auto_class("AutoConfig")
            return cls
    return None


def patch_remote_class(cls: type[nn.Module]) -> list[str]:
    """Apply the class-level shims this transformers version needs (see the module docstring); idempotent.

    Only what ``cls`` lacks is patched, on the class itself: remote-code classes live in a module that
    transformers created for this checkpoint, so nothing else sees the change.

    Returns:
        the names of the shims now in place.
    """
    applied: list[str] = list(getattr(cls, "_bgpo_shims", []))
    base = transformers.PreTrainedModel
    if "post_init" not in applied and hasattr(base, "get_expanded_tied_weights_keys"):
        original_init = cls.__init__

        @functools.wraps(original_init)
        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            original_init(self, *args, **kwargs)
            # transformers ≥ 5 reads these tables while loading; a class whose __init__ skips post_init has none.
            if not hasattr(self, "all_tied_weights_keys"):
                self.post_init()

        cls.__init__ = __init__  # type: ignore[method-assign]
        applied.append("post_init")
    base_params = inspect.signature(base.tie_weights).parameters
    own = cls.__dict__.get("tie_weights")
    if "tie_weights" not in applied and own is not None and len(base_params) > 1:
        params = inspect.signature(own).parameters.values()
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params) and len(list(params)) == 1:
            original_tie = own

            @functools.wraps(original_tie)
            def tie_weights(self: Any, *args: Any, **kwargs: Any) -> Any:
                return original_tie(self)  # the remote version knows its own tying; the new arguments are hints

            cls.tie_weights = tie_weights  # type: ignore[attr-defined]
            applied.append("tie_weights")
    cls._bgpo_shims = applied  # type: ignore[attr-defined]
    return applied


def complete_config(config: Any) -> list[str]:
    """Add the config attributes a remote ``forward`` reads but this transformers version dropped."""
    added = []
    if not hasattr(config, "use_cache"):
        config.use_cache = False
        added.append("use_cache")
    return added


def enable_activation_checkpointing(backbone: nn.Module) -> str:
    """Recompute activations in backward (memory for time), through whichever API the model has.

    Returns:
        the API used: ``"set_activation_checkpointing"`` (LLaDA and other OLMo-derived code: every block),
        ``"activation_checkpointing_enable"`` or ``"gradient_checkpointing_enable"`` (Hugging Face models,
        newer and older name).

    Raises:
        ConfigError: if the model supports neither.
    """
    base = backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone
    # LLaDA: LLaDAModelLM.model (LLaDAModel) has set_activation_checkpointing(strategy); the top-most module
    # that has it applies it to every block.
    for module in base.modules():  # pre-order: the top-most module with the method comes first
        setter = getattr(module, "set_activation_checkpointing", None)
        if callable(setter):
            setter("whole_layer")
            return "set_activation_checkpointing"
    if getattr(base, "supports_gradient_checkpointing", False):
        # transformers ≥ 5.2x renamed the API (the old name warns); non-reentrant works with inputs that need no
        # gradient and with BGPO's chunked backward.
        for api, keyword in (
            ("activation_checkpointing_enable", "activation_checkpointing_kwargs"),
            ("gradient_checkpointing_enable", "gradient_checkpointing_kwargs"),
        ):
            enable = getattr(base, api, None)
            if callable(enable):
                enable(**{keyword: {"use_reentrant": False}})
                return api
    raise ConfigError(
        f"{type(base).__name__} supports no activation checkpointing (neither set_activation_checkpointing nor "
        "gradient_checkpointing_enable); set model.gradient_checkpointing: false"
    )


def _class_names(module: nn.Module) -> set[str]:
    return {type(m).__name__ for m in module.modules()}


def block_class_names(model: nn.Module) -> list[str]:
    """The transformer-block classes to wrap one by one under FSDP, derived from the model itself.

    The model's ``_no_split_modules`` (what Hugging Face and LLaDA declare), keeping only classes the model
    really contains (LLaDA lists three block classes and instantiates one); without any, the class of the
    most repeated children of a ``ModuleList`` (the layer stack).

    Raises:
        ConfigError: if no block class can be found.
    """
    present = _class_names(model)
    declared: list[str] = []
    for module in model.modules():
        for name in getattr(module, "_no_split_modules", None) or ():
            if name in present and name not in declared:
                declared.append(name)
    if declared:
        return declared
    counts: Counter[str] = Counter()
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) > 1:
            counts.update(type(child).__name__ for child in module)
    if not counts:
        raise ConfigError(f"cannot find the transformer blocks of {type(model).__name__} to wrap under FSDP")
    return [counts.most_common(1)[0][0]]


def check_wrap_classes(model: nn.Module, names: Iterable[str]) -> list[str]:
    """Validate FSDP wrap class names against the model before anything is sharded.

    Raises:
        ConfigError: naming the classes that do not exist and the block classes that do.
    """
    names = [n.strip() for n in names if n.strip()]
    missing = [n for n in names if n not in _class_names(model)]
    if missing:
        raise ConfigError(
            f"fsdp_transformer_layer_cls_to_wrap names {', '.join(missing)}, which {type(model).__name__} does not "
            f"contain; its blocks are {', '.join(block_class_names(model))} (leave the setting out to wrap them)"
        )
    return names


__all__ = [
    "block_class_names",
    "check_wrap_classes",
    "complete_config",
    "dtype_kwarg",
    "enable_activation_checkpointing",
    "patch_remote_class",
    "remote_class",
]
