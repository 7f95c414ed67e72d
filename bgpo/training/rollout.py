"""Steps 1–3 of an iteration (SPEC §2): this process's prompts of the step, G responses each decoded at θ_old
by the block-wise sampler, graded by their task, and group advantages.

Every response has its own generator derived from (seed, "rollout", step, response index), so a response does
not depend on the batch it is decoded in or on the number of processes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..advantages import group_advantages
from ..batch import RolloutBatch
from ..evaluation import decode_responses, encode_prompts, stop_ids
from ..models import DiffusionLM
from ..run_config import TrainSettings
from ..sampler import generate
from ..seeding import generators
from ..tasks import Task
from .prompts import Prompt, PromptStream, local_shares
from .runtime import Runtime


@dataclass
class Rollout:
    """This process's share of one step's rollouts.

    Attributes:
        batches: one :class:`RolloutBatch` per mini-batch (whole groups of G responses).
        rows: the global response index of each batch's rows (the seeds of their later draws).
        rewards: (n,) every reward of this process, float64.
        tasks: the task of each reward.
        stats: timings and reward statistics for the log.
    """

    batches: list[RolloutBatch]
    rows: list[list[int]]
    rewards: Tensor
    tasks: list[str]
    stats: dict[str, float]


class RolloutStage:
    """Sample, reward and score the responses of a step.

    Args:
        settings: the ``train`` section.
        tasks: the training tasks by name (their graders).
        stream: the training prompts.
        runtime: the process group (which share of the prompts is this process's).
    """

    def __init__(self, settings: TrainSettings, tasks: dict[str, Task], stream: PromptStream, runtime: Runtime) -> None:
        self.settings = settings
        self.tasks = tasks
        self.stream = stream
        self.runtime = runtime

    @torch.no_grad()
    def __call__(self, policy: DiffusionLM, step: int) -> Rollout:
        """Decode, grade and score this process's share of step ``step`` (0-based) with ``policy`` at θ_old."""
        cfg, g = self.settings, self.settings.group_size
        shares = local_shares(
            self.stream, step, cfg.prompts_per_step, cfg.mini_batches, self.runtime.world, self.runtime.rank
        )
        flat = [(i, p) for share in shares for (i, p) in share]
        rows = [i * g + k for i, _ in flat for k in range(g)]  # global response indices
        start = time.perf_counter()
        prompt_ids, prompt_mask, responses = self._decode(policy, step, flat, rows)
        rollout_time = time.perf_counter() - start

        start = time.perf_counter()
        rewards = self._grade(policy, responses, flat)
        reward_time = time.perf_counter() - start

        advantages = group_advantages(rewards, g, cfg.advantage)
        batches = []
        offset = 0
        device = self.runtime.device
        for share in shares:
            sl = slice(offset, offset + len(share) * g)
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
            offset += len(share) * g
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
        tasks = [p.task.name for _, p in flat for _ in range(g)]
        return Rollout(batches, batch_rows, rewards, tasks, stats)

    def _decode(
        self, policy: DiffusionLM, step: int, flat: Sequence[tuple[int, Prompt]], rows: Sequence[int]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """G responses per prompt, ``rollout_batch_size`` prompts per sampler call: (prompt ids, mask, responses)."""
        cfg, g, device = self.settings, self.settings.group_size, self.runtime.device
        texts = [p.text for _, p in flat for _ in range(g)]
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
        width = max(x.shape[1] for x in ids_parts)
        prompt_ids = torch.cat([_left_pad(x, width, policy.pad_token_id) for x in ids_parts])
        prompt_mask = torch.cat([_left_pad(x, width, False) for x in mask_parts])
        return prompt_ids, prompt_mask, torch.cat(response_parts)

    def _grade(self, policy: DiffusionLM, responses: Tensor, flat: Sequence[tuple[int, Prompt]]) -> Tensor:
        """(n,) float64 rewards: each task grades its own responses in one call."""
        g = self.settings.group_size
        completions = decode_responses(policy, responses)
        rewards = torch.zeros(len(completions), dtype=torch.float64)
        by_task: dict[str, list[int]] = {}  # response j answers prompt flat[j // g]
        for j in range(len(completions)):
            by_task.setdefault(flat[j // g][1].task.name, []).append(j)
        for name, idx in by_task.items():
            grades = self.tasks[name].grade([completions[j] for j in idx], [flat[j // g][1].example for j in idx])
            rewards[idx] = torch.tensor([gr.reward for gr in grades], dtype=torch.float64)
        return rewards


def _offsets(shares: Sequence[Sequence[Any]], g: int) -> list[int]:
    out, offset = [], 0
    for share in shares:
        out.append(offset)
        offset += len(share) * g
    return out


def _left_pad(x: Tensor, width: int, value: Any) -> Tensor:
    if x.shape[1] == width:
        return x
    pad = torch.full((x.shape[0], width - x.shape[1]), value, dtype=x.dtype)
    return torch.cat([pad, x], dim=1)
