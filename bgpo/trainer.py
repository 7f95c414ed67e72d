"""The RL trainer: rollouts to updates for every method, one process to many, checkpoints that survive a kill.

One iteration (SPEC §2), the same for every method:

1. take the next ``prompts_per_step`` prompts (a fixed permutation of the training set per epoch);
2. decode G responses per prompt with the block-wise sampler at θ_old;
3. grade them (the task's reward) and compute group advantages;
4. split the batch into ``mini_batches`` (whole groups) and let the method ``prepare`` each at θ_old: its
   randomness (MC masks, prompt noise) and old-policy values on it, without gradients;
5. for each of the method's ``updates_per_batch`` passes and each mini-batch: run backward on the method's
   loss chunks one by one (``accumulate_gradients``), clip the gradient norm, step AdamW and the schedule.

Every draw has its own generator derived from (seed, purpose, step, response index)
(:mod:`bgpo.seeding`), so a run is reproducible, does not depend on the number of processes, and resumes
exactly: a checkpoint holds model, optimiser, schedule and step, everything else is derived.

Distributed (accelerate: DDP, FSDP, DeepSpeed): each process takes a contiguous share of every mini-batch's
prompts; the loss is normalised by the local number of responses and averaged across processes by the
gradient all-reduce, which happens once per optimiser step (every chunk but the last runs under
``no_sync``). Evaluation and model saving run on the main process.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .adapters import enable_activation_checkpointing
from .advantages import group_advantages
from .batch import RolloutBatch
from .distributed import check_deepspeed_config, configure_fsdp_wrapping, make_accelerator
from .evaluation import decode_responses, encode_prompts, evaluate_task, stop_ids, task_metrics
from .memory import track_memory
from .methods import Method, accumulate_gradients, active_rows
from .models import DiffusionLM, load_model
from .run_config import RunSettings, save_run_settings
from .sampler import generate
from .seeding import derive_seed, generators
from .tasks import Example, Task, build_task, render_prompt
from .tasks.code_exec import sandbox_backends
from .variants import load_variant


@dataclass
class Prompt:
    """A training prompt: its task, example and rendered text."""

    task: Task
    example: Example
    text: str


class PromptStream:
    """The training prompts in a fixed order: epoch e is a permutation drawn from (seed, e).

    The prompts of step s are positions [s·B, (s+1)·B) of the concatenated epochs, so the data position of a
    run is a function of its step and nothing needs restoring on resume.
    """

    def __init__(self, prompts: Sequence[Prompt], seed: int) -> None:
        if not prompts:
            raise ValueError("the training tasks have no examples")
        self.prompts = list(prompts)
        self.seed = seed
        self._orders: dict[int, list[int]] = {}

    def _order(self, epoch: int) -> list[int]:
        if epoch not in self._orders:
            order = list(range(len(self.prompts)))
            random.Random(derive_seed(self.seed, "epoch", epoch)).shuffle(order)
            self._orders = {epoch: order}
        return self._orders[epoch]

    def batch(self, step: int, size: int) -> list[Prompt]:
        """The ``size`` prompts of ``step``."""
        out = []
        for position in range(step * size, (step + 1) * size):
            epoch, index = divmod(position, len(self.prompts))
            out.append(self.prompts[self._order(epoch)[index]])
        return out


class Trainer:
    """Runs ``bgpo train`` (see the module docstring).

    Args:
        settings: the resolved run configuration.
        accelerator: an ``accelerate.Accelerator``; one is created if not given.
    """

    def __init__(self, settings: RunSettings, accelerator: Any = None) -> None:
        self.settings = settings
        self.accelerator = accelerator or make_accelerator()
        self.out = Path(settings.output_dir)
        acc, cfg = self.accelerator, settings.train
        self.world, self.rank = acc.num_processes, acc.process_index
        from accelerate import DistributedType

        # FSDP and ZeRO-3 gather parameters inside every forward pass, a collective call: all processes must run
        # the same passes, so inert rows are not skipped there and evaluation is split evenly.
        self.lockstep = acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
        per_minibatch = cfg.prompts_per_step // cfg.mini_batches
        if per_minibatch % self.world:
            raise ValueError(
                f"each mini-batch has {per_minibatch} prompts, which {self.world} processes cannot share evenly; "
                "make train.prompts_per_step / train.mini_batches a multiple of the number of processes"
            )
        self.variant = load_variant(settings.method.variant)
        self.method: Method = self.variant.build(settings.method.config)

        model = load_model(settings.model.path, dtype=settings.model.dtype)
        if settings.model.lora is not None:
            model = _with_lora(model, settings)
        if settings.model.gradient_checkpointing:
            enable_activation_checkpointing(model.backbone)
        self.wrapped = configure_fsdp_wrapping(self.accelerator, model)  # the loaded model's own blocks (FSDP)
        if acc.distributed_type == DistributedType.DEEPSPEED:
            check_deepspeed_config(acc.state.deepspeed_plugin.deepspeed_config, cfg.grad_clip)
        self.reference = _frozen_copy(model) if self.method.needs_reference else None
        model.train()  # no dropout in these models; train() only matters for gradient checkpointing

        data = settings.data
        self.train_tasks = {name: build_task(name, data_dir=data.data_dir, **data.options(name)) for name in data.tasks}
        eval_names = data.eval_tasks if data.eval_tasks is not None else data.tasks
        self.eval_tasks = {
            name: self.train_tasks.get(name) or build_task(name, data_dir=data.data_dir, **data.options(name))
            for name in eval_names
        }
        self.stream = PromptStream(
            [
                Prompt(task, example, render_prompt(model.tokenizer, task.message(example)))
                for task in self.train_tasks.values()
                for example in task.load("train")
            ],
            cfg.seed,
        )
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, betas=(cfg.betas[0], cfg.betas[1])
        )
        warmup = cfg.warmup_steps if cfg.lr_schedule == "warmup" else 0
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
        )
        with warnings.catch_warnings():  # torch renames broadcast_buffers; accelerate still passes it
            warnings.filterwarnings("ignore", message=".*broadcast_buffers.*", category=FutureWarning)
            self.model, self.optimizer = acc.prepare(model, optimizer)
        # The schedule is not prepared: accelerate would step it once per process. It is still checkpointed.
        self.scheduler = scheduler
        acc.register_for_checkpointing(scheduler)
        self.step = 0
        self.best: float | None = None

    # ----------------------------------------------------------------------------------------- helpers
    @property
    def policy(self) -> DiffusionLM:
        """The unwrapped model (for decoding, saving and its tokenizer)."""
        return self.accelerator.unwrap_model(self.model)

    @property
    def is_main(self) -> bool:
        """True on the main process."""
        return self.accelerator.is_main_process

    def _local_prompts(self, step: int) -> list[list[tuple[int, Prompt]]]:
        """This process's prompts of ``step``, per mini-batch, with their index in the global batch."""
        cfg = self.settings.train
        prompts = self.stream.batch(step, cfg.prompts_per_step)
        per_minibatch = cfg.prompts_per_step // cfg.mini_batches
        share = per_minibatch // self.world
        out = []
        for m in range(cfg.mini_batches):
            start = m * per_minibatch + self.rank * share
            out.append([(i, prompts[i]) for i in range(start, start + share)])
        return out

    # ----------------------------------------------------------------------------------------- rollouts
    @torch.no_grad()
    def rollout(self, step: int) -> tuple[list[RolloutBatch], list[list[int]], dict[str, float]]:
        """Decode, grade and score this process's share of step ``step``.

        Returns one batch per mini-batch, the global response indices of each batch's rows (their seeds), and
        statistics.
        """
        cfg = self.settings.train
        g = cfg.group_size
        policy = self.policy
        device = self.accelerator.device
        shares = self._local_prompts(step)
        flat = [(i, p) for share in shares for (i, p) in share]
        texts = [p.text for _, p in flat for _ in range(g)]
        rows = [i * g + k for i, _ in flat for k in range(g)]  # global response indices
        start = time.perf_counter()
        was_training = policy.training
        policy.eval()
        ids_parts, mask_parts, response_parts = [], [], []
        chunk = (cfg.rollout_batch_size or len(flat)) * g
        for lo in range(0, len(texts), chunk):
            ids, mask = encode_prompts(policy, texts[lo : lo + chunk])
            out = generate(
                policy,
                ids.to(device),
                mask.to(device),
                cfg.rollout,
                mask_token_id=policy.mask_token_id,
                eos_token_ids=stop_ids(policy),
                generator=generators((cfg.seed, "rollout", step), rows[lo : lo + chunk], device),
            )
            ids_parts.append(ids)
            mask_parts.append(mask)
            response_parts.append(out.responses.cpu())
        policy.train(was_training)
        rollout_time = time.perf_counter() - start
        width = max(x.shape[1] for x in ids_parts)
        prompt_ids = torch.cat([_left_pad(x, width, policy.pad_token_id) for x in ids_parts])
        prompt_mask = torch.cat([_left_pad(x, width, False) for x in mask_parts])
        responses = torch.cat(response_parts)

        start = time.perf_counter()
        completions = decode_responses(policy, responses)
        rewards = torch.zeros(len(completions), dtype=torch.float64)
        by_task: dict[str, list[int]] = {}  # response j answers prompt flat[j // g]
        for j in range(len(completions)):
            by_task.setdefault(flat[j // g][1].task.name, []).append(j)
        for name, idx in by_task.items():
            task = self.train_tasks[name]
            grades = task.grade([completions[j] for j in idx], [flat[j // g][1].example for j in idx])
            rewards[idx] = torch.tensor([gr.reward for gr in grades], dtype=torch.float64)
        reward_time = time.perf_counter() - start

        advantages = group_advantages(rewards, g, cfg.advantage)
        batches = []
        offset = 0
        for share in shares:
            n = len(share) * g
            sl = slice(offset, offset + n)
            batches.append(
                RolloutBatch(
                    prompt_ids=prompt_ids[sl].to(device),
                    prompt_mask=prompt_mask[sl].to(device),
                    response_ids=responses[sl].to(device),
                    advantages=advantages[sl].to(device),
                    mask_token_id=policy.mask_token_id,
                    rewards=rewards[sl],
                    group_size=g,
                    eos_token_id=policy.eos_token_id,
                )
            )
            offset += n
        stats = {
            "rollout_time": rollout_time,
            "reward_time": reward_time,
            "rollout_tokens_per_s": responses.numel() / max(rollout_time, 1e-9),
            "reward_mean": rewards.mean().item(),
            "reward_std": rewards.std().item() if rewards.numel() > 1 else 0.0,
            "advantage_abs_mean": advantages.abs().mean().item(),
            "zero_advantage_fraction": (advantages == 0).double().mean().item(),
        }
        batch_rows = [rows[o : o + len(s) * g] for o, s in zip(_offsets(shares, g), shares, strict=True)]
        return batches, batch_rows, stats

    # ------------------------------------------------------------------------------------------- update
    def update(
        self, step: int, batches: Sequence[RolloutBatch], batch_rows: Sequence[Sequence[int]]
    ) -> dict[str, float]:
        """Prepare every mini-batch at θ_old, then the method's optimiser steps."""
        cfg, acc, method = self.settings.train, self.accelerator, self.method
        on_policy = len(batches) == 1 and method.updates_per_batch == 1
        start = time.perf_counter()
        # Only the rows that will run are prepared: for most methods a response with A = 0 needs neither
        # old values nor gradients. Each row has its own generator, so a row's draws do not depend on
        # which other rows are prepared.
        prepared: list[tuple[torch.Tensor, dict[str, torch.Tensor]] | None] = []  # (rows, state) per mini-batch
        for mb, ids in zip(batches, batch_rows, strict=True):
            rows = self._rows_to_run(mb)
            if rows is None:  # no process has anything to learn from: no step at all
                prepared.append(None)
                continue
            whole = rows.numel() == mb.num_responses  # then pass the mini-batch itself, with its groups
            part = mb if whole else mb.select(rows)
            seeds = generators(
                (cfg.seed, "prepare", step), ids if whole else [ids[i] for i in rows.tolist()], acc.device
            )
            state = method.prepare(self.model, part, seeds, on_policy=on_policy, reference=self.reference)
            prepared.append((rows, state))
        prepare_time = time.perf_counter() - start
        params = [p for p in self.model.parameters() if p.requires_grad]
        stats: dict[str, float] = {"prepare_time": prepare_time, "loss": 0.0, "grad_norm": 0.0, "chunks": 0}
        update_time = optimizer_time = 0.0
        optimizer_steps = 0
        with track_memory(exclude=params) as memory:
            for update in range(method.updates_per_batch):
                for mb, item in zip(batches, prepared, strict=True):
                    if item is None:
                        continue
                    rows, state = item
                    start = time.perf_counter()
                    result = accumulate_gradients(
                        method,
                        self.model,
                        mb.select(rows),
                        state,
                        normaliser=mb.num_responses,
                        micro_batch_size=cfg.micro_batch_size,
                        backward=acc.backward,
                        update=update,
                        no_sync=self._no_sync if self.world > 1 else None,
                    )
                    update_time += time.perf_counter() - start
                    start = time.perf_counter()
                    # Read the parameters afresh: FSDP2 swaps the root's parameters between unsharded tensors
                    # (after a no-grad forward, e.g. prepare) and sharded DTensors (after backward).
                    trainable = [p for p in self.model.parameters() if p.requires_grad]
                    norm = acc.clip_grad_norm_(trainable, cfg.grad_clip)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                    optimizer_time += time.perf_counter() - start
                    optimizer_steps += 1
                    stats["loss"] += result.loss
                    stats["grad_norm"] += float(norm)
                    stats["chunks"] += result.chunks
        steps = max(optimizer_steps, 1)
        stats.update(
            loss=stats["loss"] / steps,
            grad_norm=stats["grad_norm"] / steps,
            optimizer_steps=optimizer_steps,
            update_time=update_time,
            optimizer_time=optimizer_time,
            peak_saved_bytes=memory.peak_saved_bytes,
            peak_rss_bytes=memory.peak_rss_bytes,
            lr=self.scheduler.get_last_lr()[0],
        )
        if memory.cuda_peak_bytes is not None:
            stats["cuda_peak_bytes"] = memory.cuda_peak_bytes
        return stats

    @contextmanager
    def _no_sync(self) -> Iterator[None]:
        """Suspend gradient synchronisation (DDP, FSDP: accelerate's no_sync; DeepSpeed: its accumulation boundary)."""
        engine = getattr(self.accelerator, "deepspeed_engine_wrapped", None)
        if engine is None:
            with self.accelerator.no_sync(self.model):
                yield
            return
        engine.engine.set_gradient_accumulation_boundary(False)
        try:
            yield
        finally:
            engine.engine.set_gradient_accumulation_boundary(True)

    def _rows_to_run(self, batch: RolloutBatch) -> torch.Tensor | None:
        """Rows whose loss can be non-zero; ``None`` if no process has any (then no optimiser step).

        Under DDP every process must run a backward when any does, so a process without such rows runs one
        inert row (A = 0: zero loss and gradient) to take part in the all-reduce.
        """
        if self.lockstep:
            return torch.arange(batch.num_responses, device=batch.advantages.device)
        rows = active_rows(self.method, batch)
        if self.world == 1:
            return rows if rows.numel() else None
        counts = self.accelerator.gather(torch.tensor([rows.numel()], device=self.accelerator.device))
        if int(counts.max()) == 0:
            return None
        return rows if rows.numel() else torch.arange(1, device=rows.device)

    # --------------------------------------------------------------------------------------- evaluation
    def evaluate(self, step: int) -> dict[str, float]:
        """Evaluate the eval tasks, split across processes, and keep the best model; returns task/metric values."""
        from accelerate.utils import gather_object

        cfg, data = self.settings.train, self.settings.data
        results: dict[str, float] = {}
        rows = []
        for name, task in self.eval_tasks.items():
            examples = task.load(data.eval_split)
            if data.eval_limit is not None:
                examples = examples[: data.eval_limit]
            mine = examples[self.rank :: self.world]
            count = len(mine)
            if self.lockstep:  # equal shares: every process runs the same decoding passes
                width = -(-len(examples) // self.world)
                mine = (mine + examples[:1] * width)[:width]
            records, _ = evaluate_task(
                self.policy, task, mine, cfg.eval_sampler, batch_size=cfg.eval_batch_size, seed=cfg.seed + self.rank
            )
            records = records[:count]  # without the padding
            gathered = gather_object([records]) if self.world > 1 else [records]
            every = [r for part in gathered for r in part]
            for metric, value in task_metrics(task, every).items():
                results[f"{name}/{metric}"] = value
                rows.append({"step": step, "task": name, "metric": metric, "value": value, "n": len(every)})
        if self.is_main:
            with open(self.out / "eval.jsonl", "a") as f:
                for row in rows:
                    f.write(json.dumps(row) + "\n")
        first = next(iter(self.eval_tasks.values()))
        score = results[f"{first.name}/{first.metric}"]
        if self.best is None or score > self.best:
            self.best = score
            self._save_model(
                self.out / "best", {"step": step, "score": score, "metric": f"{first.name}/{first.metric}"}
            )
        self.accelerator.wait_for_everyone()
        return results

    # --------------------------------------------------------------------------------------- checkpoints
    def _save_model(self, path: Path, info: dict[str, Any]) -> None:
        """Save the policy (all processes call this: gathering sharded weights is collective)."""
        state = self.accelerator.get_state_dict(self.model) if self.lockstep else None
        if self.is_main:
            tmp = path.with_name(f".{path.name}.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            self.policy.save_pretrained(tmp, state_dict=state)
            (tmp / "bgpo_info.json").write_text(json.dumps(info))
            _replace_dir(tmp, path)
        self.accelerator.wait_for_everyone()

    def save_checkpoint(self) -> None:
        """Write ``checkpoints/step_XXXXXX`` atomically (a temporary folder renamed when complete)."""
        root = self.out / "checkpoints"
        final = root / f"step_{self.step:06d}"
        tmp = root / f".tmp_step_{self.step:06d}"
        if self.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        self.accelerator.wait_for_everyone()
        self.accelerator.save_state(str(tmp))
        self.accelerator.wait_for_everyone()
        if self.is_main:
            state = {"step": self.step, "best": self.best, "config_hash": self.settings.digest()}
            (tmp / "trainer_state.json").write_text(json.dumps(state))
            _replace_dir(tmp, final)
            for old in sorted(root.glob("step_*"))[: -self.settings.train.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()

    def resume(self) -> bool:
        """Load the latest checkpoint, if any; returns whether one was found."""
        checkpoints = sorted((self.out / "checkpoints").glob("step_*"))
        if not checkpoints:
            return False
        latest = checkpoints[-1]
        state = json.loads((latest / "trainer_state.json").read_text())
        if state["config_hash"] != self.settings.digest():
            raise ValueError(
                f"{latest} was written with a different configuration (hash {state['config_hash']}, now "
                f"{self.settings.digest()}); resume with the same config or choose another output_dir"
            )
        self.accelerator.load_state(str(latest))
        self.step, self.best = state["step"], state["best"]
        if self.is_main:  # drop log lines of steps after the checkpoint: they will be redone
            for name in ("log.jsonl", "eval.jsonl"):
                _truncate_log(self.out / name, self.step)
        self.accelerator.wait_for_everyone()
        return True

    # ------------------------------------------------------------------------------------------ the loop
    def train(self, resume: bool = False) -> dict[str, Any]:
        """Run to ``train.steps``; returns a summary."""
        cfg = self.settings.train
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            save_run_settings(self.settings, self.out / "config.yaml")
        self.accelerator.wait_for_everyone()
        resumed = self.resume() if resume else False
        if not resumed and self.is_main:
            for name in ("log.jsonl", "eval.jsonl"):
                (self.out / name).unlink(missing_ok=True)
        if not resumed and cfg.eval_at_start and cfg.eval_every:
            self.evaluate(0)
        bar = tqdm(
            total=cfg.steps, initial=self.step, disable=not self.is_main or not sys.stderr.isatty(), desc="train"
        )
        while self.step < cfg.steps:
            start = time.perf_counter()
            batches, batch_rows, rollout_stats = self.rollout(self.step)
            update_stats = self.update(self.step, batches, batch_rows)
            self.step += 1
            record = {"step": self.step, **rollout_stats, **update_stats, "step_time": time.perf_counter() - start}
            record = self._gather_record(record)
            if self.is_main:
                with open(self.out / "log.jsonl", "a") as f:
                    f.write(json.dumps(record) + "\n")
            bar.update(1)
            bar.set_postfix(reward=f"{record['reward_mean']:.3f}", loss=f"{record['loss']:.4f}")
            if cfg.eval_every and (self.step % cfg.eval_every == 0 or self.step == cfg.steps):
                self.evaluate(self.step)
            if cfg.save_every and (self.step % cfg.save_every == 0 or self.step == cfg.steps):
                self.save_checkpoint()
        bar.close()
        self._save_model(self.out / "final", {"step": self.step})
        if self.is_main:
            summary = {
                "steps": self.step,
                "best": self.best,
                "config_hash": self.settings.digest(),
                "distributed_type": str(self.accelerator.distributed_type).removeprefix("DistributedType."),
                "processes": self.world,
                "fsdp_wrapped": self.wrapped,
                "sandbox": sandbox_backends({**self.train_tasks, **self.eval_tasks}.values()),
            }
            (self.out / "summary.json").write_text(json.dumps(summary))
        self.accelerator.wait_for_everyone()
        return {"steps": self.step, "best": self.best}

    def _gather_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """Average per-process numbers across processes (rewards, times, losses); peaks take the maximum."""
        if self.world == 1:
            return record
        keys = sorted(k for k, v in record.items() if isinstance(v, (int, float)) and k != "step")
        values = torch.tensor([float(record[k]) for k in keys], dtype=torch.float64, device=self.accelerator.device)
        gathered = self.accelerator.gather(values[None]).view(self.world, -1)
        out = dict(record)
        for i, key in enumerate(keys):
            column = gathered[:, i]
            out[key] = float(column.max() if "peak" in key else column.mean())
        return out


def _offsets(shares: Sequence[Sequence[Any]], g: int) -> list[int]:
    out, offset = [], 0
    for share in shares:
        out.append(offset)
        offset += len(share) * g
    return out


def _left_pad(x: torch.Tensor, width: int, value: Any) -> torch.Tensor:
    if x.shape[1] == width:
        return x
    pad = torch.full((x.shape[0], width - x.shape[1]), value, dtype=x.dtype)
    return torch.cat([pad, x], dim=1)


def _replace_dir(src: Path, dst: Path) -> None:
    """Make ``src`` appear at ``dst`` atomically (rename; an older ``dst`` is moved aside first)."""
    old = dst.with_name(f".{dst.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def _truncate_log(path: Path, step: int) -> None:
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in kept))


def _frozen_copy(model: DiffusionLM) -> DiffusionLM:
    import copy

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


def log_steps(path: Path) -> list[dict[str, Any]]:
    """The records of a run's ``log.jsonl``."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


__all__ = ["PromptStream", "Trainer", "log_steps"]
