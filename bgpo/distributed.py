"""The accelerator of a training run (accelerate: one process, DDP, FSDP2, DeepSpeed) and FSDP's wrapping.

``accelerate launch --config_file configs/accelerate/<config>.yaml -m bgpo.cli train ...`` passes the
config to each process through environment variables; :func:`make_accelerator` turns them into an
``Accelerator``. Two things are added to what accelerate does by itself:

* **FSDP on CPU.** accelerate enables FSDP only on accelerators: on a CPU machine a FSDP config would
  silently become plain multi-process data parallelism (``MULTI_CPU``). FSDP2 (``fully_shard``) runs on
  CPU with the gloo backend, so here the FSDP plugin is built from the same environment and switched on
  explicitly: the sharded code path is tested on CPU exactly as it runs on GPUs.
* **Which blocks to wrap**, derived from the loaded model (:func:`configure_fsdp_wrapping`): a config
  that names no block classes gets the model's own; a config that names classes the model lacks fails
  before anything is sharded, with a message naming the classes that exist
  (:func:`bgpo.adapters.check_wrap_classes`). One config then serves LLaDA's remote code
  (``LLaDALlamaBlock``) and the Llama-block presets (``LlamaDecoderLayer``) alike.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from .adapters import block_class_names, check_wrap_classes


def _env_true(name: str) -> bool:
    return os.environ.get(name, "false").strip().lower() in ("1", "true", "yes")


def fsdp_requested() -> bool:
    """True when ``accelerate launch`` was given a FSDP config (it sets ``ACCELERATE_USE_FSDP``)."""
    return _env_true("ACCELERATE_USE_FSDP")


def make_accelerator() -> Any:
    """The run's ``Accelerator``, with FSDP switched on explicitly on CPU (see the module docstring)."""
    from accelerate import Accelerator, DistributedDataParallelKwargs, DistributedType

    on_cpu = not torch.cuda.is_available() or _env_true("ACCELERATE_USE_CPU")
    # Processes run different numbers of forward passes (their active rows differ), so DDP must not
    # broadcast buffers on every forward: that is a collective call and would wait forever.
    accelerator = Accelerator(cpu=on_cpu, kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)])
    if on_cpu and fsdp_requested() and accelerator.distributed_type == DistributedType.MULTI_CPU:
        from accelerate import FullyShardedDataParallelPlugin, PartialState

        plugin = FullyShardedDataParallelPlugin()  # reads the FSDP_* variables accelerate launch set
        # Both shared states: every later AcceleratorState() copies PartialState's fields over its own.
        PartialState().distributed_type = DistributedType.FSDP
        accelerator.state.distributed_type = DistributedType.FSDP
        accelerator.state.fsdp_plugin = plugin
    return accelerator


def configure_fsdp_wrapping(accelerator: Any, model: nn.Module) -> list[str] | None:
    """Set (or validate) the block classes FSDP wraps, from ``model``; a no-op without transformer-based wrapping.

    Returns:
        the class names wrapped, or None when FSDP is not in use or wraps by another policy (size, none).

    Raises:
        ConfigError: if the config names classes ``model`` does not contain.
    """
    from accelerate import DistributedType
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    if accelerator.distributed_type != DistributedType.FSDP:
        return None
    plugin = accelerator.state.fsdp_plugin
    policy = plugin.auto_wrap_policy
    if getattr(policy, "func", policy) is not transformer_auto_wrap_policy:
        return None
    names = plugin.transformer_cls_names_to_wrap
    if isinstance(names, str):
        names = names.split(",")
    if names:
        names = check_wrap_classes(model, names)
    else:
        names = block_class_names(model)
    plugin.transformer_cls_names_to_wrap = names
    return names


def check_deepspeed_config(ds_config: dict[str, Any], grad_clip: float) -> None:
    """Validate a DeepSpeed config against what the trainer does (run before training; DeepSpeed is untested here).

    The trainer marks the accumulation boundary itself (the last loss chunk of an optimiser step), so DeepSpeed
    must not accumulate on its own, and DeepSpeed clips gradients itself, so its clipping must be the run's.

    Raises:
        ConfigError: naming the setting and the value it must have.
    """
    from .config import ConfigError

    accumulation = ds_config.get("gradient_accumulation_steps", 1)
    if accumulation not in (1, "auto"):
        raise ConfigError(
            f"deepspeed_config.gradient_accumulation_steps is {accumulation}; it must be 1 (the trainer accumulates "
            "loss chunks itself and marks DeepSpeed's accumulation boundary)"
        )
    clipping = ds_config.get("gradient_clipping", "auto")
    if clipping != "auto" and float(clipping) != float(grad_clip):
        raise ConfigError(
            f"deepspeed_config.gradient_clipping is {clipping} but train.grad_clip is {grad_clip}: DeepSpeed clips "
            "in place of the trainer, so set them equal"
        )


__all__ = ["check_deepspeed_config", "configure_fsdp_wrapping", "fsdp_requested", "make_accelerator"]


def half_precision_master_weights(optimizer: torch.optim.Optimizer, deepspeed: bool) -> str | None:
    """Why the optimiser's own parameters in bfloat16/float16 will not train as the paper did, or ``None``.

    FSDP with mixed precision keeps float32 master weights and DeepSpeed's bf16 engine keeps its own; a
    single process or DDP optimises the parameters in the dtype they were loaded in. In bfloat16, AdamW at
    SPEC §2's learning rate (5e-7) moves a weight by far less than half its ulp, so most updates round away,
    and BGPO's n_t × micro-batch gradient chunks are summed in bfloat16 (its on-policy gradient no longer
    equals VRPO-OL's)."""
    if deepspeed:
        return None
    half = {
        p.dtype
        for group in optimizer.param_groups
        for p in group["params"]
        if p.dtype in (torch.bfloat16, torch.float16)
    }
    if not half:
        return None
    names = "/".join(sorted(str(d).removeprefix("torch.") for d in half))
    return (
        f"the trainable parameters are {names} and nothing keeps float32 master weights (no FSDP mixed precision, "
        "no DeepSpeed): AdamW at a small learning rate rounds most updates away and gradients accumulate in "
        f"{names}. Train float32 parameters (model.dtype: float32, with accelerate's mixed_precision for the "
        "compute), launch with FSDP or DeepSpeed, or train LoRA adapters (model.lora)."
    )


def shutdown() -> None:
    """Leave the process group cleanly at the end of a launched run.

    Without it each process tears gloo/NCCL down at interpreter exit in whatever order: a rank that exits
    while its peer still holds the connection can abort (SIGABRT) after all work is done, and the launcher
    then reports a finished run as failed. A barrier first, so no rank leaves while another still talks.
    No-op in a single process.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
