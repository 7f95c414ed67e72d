"""The RL trainer: rollouts to updates for every method, one process to many, runs that survive faults.

One iteration (SPEC §2), the same for every method; each stage is a module of :mod:`bgpo.training`:

1. take the next ``prompts_per_step`` prompts (a fixed permutation of the training set per epoch; ``prompts``);
2. decode G responses per prompt with the block-wise sampler at θ_old (``rollout``);
3. grade them (the task's reward) and compute group advantages (``rollout``);
4. split the batch into ``mini_batches`` (whole groups) and let the method ``prepare`` each at θ_old: its
   randomness (MC masks, prompt noise) and old-policy values on it, without gradients (``update``);
5. for each of the method's ``updates_per_batch`` passes and each mini-batch: run backward on the method's
   loss chunks one by one, clip the gradient norm, step AdamW and the schedule (``update``).

Rewards, losses, gradient norms and the parameters after each optimiser step are checked to be finite
(``guards``); every ``eval_every`` steps the eval tasks are evaluated and the best model kept
(``evaluation``); every ``save_every`` steps a checkpoint is written atomically with a manifest
(``checkpoint``), and ``--resume`` continues from the newest intact one.

Every draw has its own generator derived from (seed, purpose, step, response index) (:mod:`bgpo.seeding`), so a
run is reproducible, does not depend on the number of processes, and resumes exactly: a checkpoint holds model,
optimiser, schedule and step, everything else is derived.

Distributed (accelerate: DDP, FSDP, DeepSpeed): each process takes a contiguous share of every mini-batch's
prompts; gradients are averaged across processes once per optimiser step. Evaluation and model saving run on
the main process.
"""

from __future__ import annotations

import copy
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .adapters import enable_activation_checkpointing
from .config import ConfigError
from .distributed import check_deepspeed_config, configure_fsdp_wrapping, half_precision_master_weights
from .methods import Method
from .models import DiffusionLM, load_model
from .run_config import RunSettings, save_run_settings
from .tasks import Task, build_task, render_prompt
from .tasks.code_exec import sandbox_backends
from .training import runlog
from .training.checkpoint import Checkpoints, check_output_dir, clear_output_dir, save_model, write_json
from .training.evaluation import EvaluationStage
from .training.guards import FiniteGuard
from .training.prompts import Prompt, PromptStream, load_split
from .training.rollout import RolloutStage
from .training.runlog import log_steps
from .training.runtime import Runtime
from .training.update import UpdateStage
from .variants import load_variant


class Trainer:
    """Runs ``bgpo train`` (see the module docstring).

    Args:
        settings: the resolved run configuration.
        accelerator: an ``accelerate.Accelerator``; one is created if not given.
    """

    def __init__(self, settings: RunSettings, accelerator: Any = None) -> None:
        self.settings = settings
        self.runtime = Runtime.create(accelerator)
        self.accelerator = self.runtime.accelerator
        self.out = Path(settings.output_dir)
        cfg, data = settings.train, settings.data
        per_minibatch = cfg.prompts_per_step // cfg.mini_batches
        if per_minibatch % self.runtime.world:
            raise ConfigError(
                f"each mini-batch has {per_minibatch} prompts, which {self.runtime.world} processes cannot share "
                "evenly; make train.prompts_per_step / train.mini_batches a multiple of the number of processes"
            )
        self.variant = load_variant(settings.method.variant)
        self.method: Method = self.variant.build(settings.method.config)

        train_tasks = {name: build_task(name, data_dir=data.data_dir, **data.options(name)) for name in data.tasks}
        eval_names = data.eval_tasks if data.eval_tasks is not None else data.tasks
        eval_tasks = {
            name: train_tasks.get(name) or build_task(name, data_dir=data.data_dir, **data.options(name))
            for name in eval_names
        }
        # A code task's sandbox is resolved now, before the model loads (minutes at paper scale): without
        # bubblewrap the run stops here, with the message saying what to install.
        sandbox_backends({**train_tasks, **eval_tasks}.values())

        model = self._load_policy()
        self.reference = _frozen_copy(model) if self.method.needs_reference else None
        model.train()  # no dropout in these models; train() only matters for gradient checkpointing

        stream = PromptStream(_prompts(train_tasks, model.tokenizer), cfg.seed)
        self.model, self.optimizer, self.scheduler = self._optimiser(model)

        checkpoint_hash = settings.digest(location=False)  # a run copied elsewhere is the same run
        self.checkpoints = Checkpoints(self.out / "checkpoints", self.runtime, cfg.keep_checkpoints, checkpoint_hash)
        self.guard = FiniteGuard(cfg.on_nonfinite, self.runtime, lambda: self.checkpoints.latest)
        self.rollout = RolloutStage(cfg, train_tasks, stream, self.runtime)
        self.update = UpdateStage(
            self.method, self.model, self.optimizer, self.scheduler, self.reference, cfg, self.runtime, self.guard
        )
        self.evaluate = EvaluationStage(eval_tasks, settings, self.runtime, self.out)
        self.step = 0

    # ------------------------------------------------------------------------------------------ set-up
    def _load_policy(self) -> DiffusionLM:
        """The policy to train: the model, LoRA adapters if configured, gradient checkpointing if asked."""
        model_settings = self.settings.model
        model = load_model(model_settings.path, dtype=model_settings.dtype)
        if model_settings.lora is not None:
            model = _with_lora(model, self.settings)
        if model_settings.gradient_checkpointing:
            enable_activation_checkpointing(model.backbone)
        self.wrapped = configure_fsdp_wrapping(self.accelerator, model)  # the loaded model's own blocks (FSDP)
        from accelerate import DistributedType

        if self.accelerator.distributed_type == DistributedType.DEEPSPEED:
            ds_config = self.accelerator.state.deepspeed_plugin.deepspeed_config
            check_deepspeed_config(ds_config, self.settings.train.grad_clip)
        return model

    def _optimiser(self, model: DiffusionLM) -> tuple[torch.nn.Module, torch.optim.Optimizer, Any]:
        """AdamW over the trainable parameters and the schedule; returns the prepared model and optimiser."""
        cfg = self.settings.train
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, betas=(cfg.betas[0], cfg.betas[1])
        )
        warmup = cfg.warmup_steps if cfg.lr_schedule == "warmup" else 0
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
        )
        from accelerate import DistributedType

        with warnings.catch_warnings():  # torch renames broadcast_buffers; accelerate still passes it
            warnings.filterwarnings("ignore", message=".*broadcast_buffers.*", category=FutureWarning)
            prepared, optimizer = self.accelerator.prepare(model, optimizer)
        deepspeed = self.accelerator.distributed_type == DistributedType.DEEPSPEED
        problem = half_precision_master_weights(optimizer, deepspeed)
        if problem is not None:
            warnings.warn(problem, stacklevel=2)
        # The schedule is not prepared: accelerate would step it once per process. It is still checkpointed.
        self.accelerator.register_for_checkpointing(scheduler)
        return prepared, optimizer, scheduler

    @property
    def policy(self) -> DiffusionLM:
        """The unwrapped model (for decoding, saving and its tokenizer)."""
        return self.accelerator.unwrap_model(self.model)

    @property
    def is_main(self) -> bool:
        """True on the main process."""
        return self.runtime.is_main

    # ------------------------------------------------------------------------------------------ the loop
    def train(self, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
        """Run to ``train.steps``; returns a summary.

        Args:
            resume: continue the run in ``output_dir`` from its newest intact checkpoint (or start it there).
            overwrite: delete what ``output_dir`` holds and start again. Without either, a non-empty
                ``output_dir`` is an error.
        """
        cfg = self.settings.train
        resumed = self._start(resume, overwrite)
        if not resumed and cfg.eval_at_start and cfg.eval_every:
            self.evaluate(self.model, 0)
        bar = tqdm(
            total=cfg.steps, initial=self.step, disable=not self.is_main or not sys.stderr.isatty(), desc="train"
        )
        while self.step < cfg.steps:
            start = time.perf_counter()
            rollout = self.rollout(self.policy, self.step)  # 1–3: prompts, G responses each at θ_old, advantages
            if self.guard.rewards(self.step + 1, rollout.rewards, rollout.tasks):
                stats = self.update(self.step, rollout)  # 4–5: prepare at θ_old, loss chunks, optimiser steps
            else:
                stats = self.update.skipped()
            self.step += 1
            record = self._gather(
                {"step": self.step, **rollout.stats, **stats, "step_time": time.perf_counter() - start}
            )
            if self.is_main:
                runlog.append(self.out / "log.jsonl", record)
            bar.update(1)
            bar.set_postfix(reward=f"{record['reward_mean']:.3f}", loss=f"{record['loss']:.4f}")
            if cfg.eval_every and (self.step % cfg.eval_every == 0 or self.step == cfg.steps):
                self.evaluate(self.model, self.step)
            if cfg.save_every and (self.step % cfg.save_every == 0 or self.step == cfg.steps):
                self.checkpoints.save(self.step, {"best": self.evaluate.best})
        bar.close()
        return self._finish()

    def _start(self, resume: bool, overwrite: bool) -> bool:
        """Prepare the run folder and the state: resume from a checkpoint, or start afresh; returns whether
        a checkpoint was loaded."""
        # Every process (they raise alike), before anything is written: a refused resume leaves the run intact.
        check_output_dir(self.out, resume=resume, overwrite=overwrite, config_hash=self.settings.digest(location=False))
        self.runtime.wait()
        if self.is_main:
            if overwrite and self.out.exists():
                clear_output_dir(self.out)
            self.out.mkdir(parents=True, exist_ok=True)
            save_run_settings(self.settings, self.out / "config.yaml")
        self.runtime.wait()
        checkpoint = self.checkpoints.find_resumable() if resume else None
        if checkpoint is not None:
            state = self.checkpoints.load(checkpoint)
            self.step, self.evaluate.best = state["step"], state["best"]
        if self.is_main:  # drop log lines of steps after the checkpoint (they will be redone), or all of them
            for name in ("log.jsonl", "eval.jsonl"):
                if checkpoint is not None:
                    runlog.truncate(self.out / name, self.step)
                else:
                    (self.out / name).unlink(missing_ok=True)
        self.runtime.wait()
        return checkpoint is not None

    def _finish(self) -> dict[str, Any]:
        """Save the final model and the summary."""
        save_model(self.runtime, self.model, self.out / "final", {"step": self.step})
        if self.is_main:
            summary = {
                "steps": self.step,
                "best": self.evaluate.best,
                "config_hash": self.settings.digest(),
                "distributed_type": str(self.accelerator.distributed_type).removeprefix("DistributedType."),
                "processes": self.runtime.world,
                "fsdp_wrapped": self.wrapped,
                "sandbox": sandbox_backends({**self.rollout.tasks, **self.evaluate.tasks}.values()),
            }
            write_json(self.out / "summary.json", summary)
        self.runtime.wait()
        return {"steps": self.step, "best": self.evaluate.best}

    def _gather(self, record: dict[str, Any]) -> dict[str, Any]:
        """Average per-process numbers across processes (rewards, times, losses); peaks take the maximum."""
        if self.runtime.world == 1:
            return record
        keys = sorted(k for k, v in record.items() if isinstance(v, (int, float)) and k != "step")
        values = torch.tensor([float(record[k]) for k in keys], dtype=torch.float64, device=self.runtime.device)
        gathered = self.accelerator.gather(values[None]).view(self.runtime.world, -1)
        out = dict(record)
        for i, key in enumerate(keys):
            column = gathered[:, i]
            out[key] = float(column.max() if "peak" in key else column.mean())
        return out


def _prompts(tasks: dict[str, Task], tokenizer: Any) -> list[Prompt]:
    """Every training example of every task, rendered; a task without training examples is a data error."""
    return [
        Prompt(task, example, render_prompt(tokenizer, task.message(example)))
        for task in tasks.values()
        for example in load_split(task, "train")
    ]


def _frozen_copy(model: DiffusionLM) -> DiffusionLM:
    reference = copy.deepcopy(model)
    reference.requires_grad_(False)
    reference.eval()
    return reference


def _with_lora(model: DiffusionLM, settings: RunSettings) -> DiffusionLM:
    from peft import LoraConfig, get_peft_model

    lora = settings.model.lora
    assert lora is not None
    backbone = get_peft_model(
        model.backbone,
        LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules),
    )
    return DiffusionLM(
        backbone,
        model.tokenizer,
        mask_token_id=model.mask_token_id,
        eos_token_id=model.eos_token_id,
        pad_token_id=model.pad_token_id,
        eot_token_id=model.eot_token_id,
    )


__all__ = ["PromptStream", "Trainer", "log_steps"]
