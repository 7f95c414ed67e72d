"""LLaDA's block-wise semi-autoregressive decoding with low-confidence remasking (SPEC §6).

The response starts as L mask tokens split into L / block_length blocks, decoded left to right. The
``steps`` denoising steps are split evenly over the blocks; within a block, the number of tokens committed
at each step follows LLaDA's schedule (``get_num_transfer_tokens``: the block's masks divided evenly over
its steps, the remainder going to the first steps). At each step the model predicts every masked
position; a token is drawn per position by Gumbel-max at temperature T with float64 noise (greedy argmax
at T = 0); its confidence is its probability under the model (``low_confidence``) or a uniform random
number (``random``); positions outside the current block are never committed; the k most confident
masked positions of the block are committed.

Options: ``forbid_eos`` never samples EOS/EoT; ``zero_eos_confidence`` gives EOS/EoT the confidence 0, so
they are committed last. Batches of prompts of different lengths are left-padded with an attention mask;
with one generator per row (``generator=[...]``) each row's result does not depend on the batch it is in.

No wasted work: a step where a row commits nothing does not run the model for that row (with steps per
block above the block length LLaDA's schedule has such steps), finished rows leave the batch, and only the
current block's positions go through the LM head, the Gumbel noise and the softmax.

Beyond the paper, ``stop_at_eos`` treats a row as finished once it has committed an EOS and every position
before it: the positions after it are filled with EOS (LLaDA's padding convention) without running the
model. This is an approximation (the exact algorithm could sample something other than EOS there) and is
off by default. ``threshold`` switches to confidence-threshold parallel decoding (Fast-dLLM): each step
commits every masked position of the block whose confidence exceeds the threshold, at least one, which
takes fewer steps than the schedule; also off by default.

``cache`` (Fast-dLLM's block-wise approximate KV cache, :mod:`bgpo.kv_cache`) avoids recomputing what barely
changes within a block: ``none`` (the default) runs the whole sequence at every step, the exact algorithm;
``prefix`` runs a full pass at the first step of each block, keeps the keys/values of the prompt and the
completed blocks, and runs only the block and the suffix after it at the block's other steps; ``dual`` keeps
the suffix's keys/values too and runs only the block. Both are approximations: a committed token changes the
cached positions' keys in a bidirectional model, and the cache sees that only at the next block. With
``cache_refresh: step`` the cache is rebuilt from the current sequence at every step and the block is then
run against it: the same numbers as ``none`` up to rounding (the exactness test of the cached path), at more
cost. Either cache combines with ``threshold``. The decoding schedule, the sampling and the row bookkeeping
are the same in every mode; only how the block's logits are computed differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from . import kv_cache
from .config import require, require_choice

REMASKING = ("low_confidence", "random")


def block_schedule_problem(
    gen_length: int,
    block_length: int,
    steps: int,
    keys: tuple[str, str, str] = ("gen_length", "block_length", "steps"),
    root: str = "sampler.",
) -> str | None:
    """What is wrong with a block schedule, or ``None``.

    The sampler needs L = blocks × block_length and steps = blocks × steps per block. ``keys`` are the names
    the message gives the three values and ``root`` the path before them (the pipeline's config calls them
    ``response_length``, ``block_length`` and ``rollout_steps`` under ``config.tasks.<task>.``).
    """
    length_key, block_key, steps_key = keys
    if gen_length < 1:
        return f"{length_key} must be ≥ 1, got {gen_length}; set {root}{length_key}"
    if block_length < 1 or gen_length % block_length:
        divisors = [d for d in range(1, gen_length + 1) if gen_length % d == 0]
        shown = ", ".join(map(str, divisors[:12])) + (", …" if len(divisors) > 12 else "")
        return (
            f"{length_key} ({gen_length}) must be a multiple of {block_key} ({block_length}): blocks tile the "
            f"response; change {root}{block_key} to one of {shown} (or {root}{length_key})"
        )
    blocks = gen_length // block_length
    if steps < 1 or steps % blocks:
        return (
            f"{steps_key} ({steps}) must be a positive multiple of the number of blocks ({length_key} / {block_key} "
            f"= {gen_length} / {block_length} = {blocks}): each block gets the same number of steps; change "
            f"{root}{steps_key} (e.g. to {max(blocks, steps - steps % blocks)})"
        )
    return None


@dataclass
class SamplerConfig:
    """Decoding settings (Table 5: length 256–512, block 32, steps length/2 in training, = length in eval).

    Attributes:
        gen_length: response length L.
        block_length: tokens per block; must divide ``gen_length``.
        steps: denoising steps in total; must be a multiple of the number of blocks.
        temperature: Gumbel-max temperature T; 0 is greedy.
        remasking: ``low_confidence`` (LLaDA's default) or ``random``.
        forbid_eos: never sample EOS (or EoT).
        zero_eos_confidence: EOS/EoT positions get confidence 0 and are committed last.
        stop_at_eos: finish a row once its first EOS and everything before it are committed (approximate).
        threshold: if set, confidence-threshold parallel decoding instead of the fixed schedule.
        cache: ``none`` (exact), ``prefix`` or ``dual`` block-wise approximate KV caching (Fast-dLLM).
        cache_refresh: ``block`` (the cache is rebuilt at each block's first step) or ``step`` (at every
            step: exact, for testing the cached path).
    """

    gen_length: int = 256
    block_length: int = 32
    steps: int = 128
    temperature: float = 0.0
    remasking: str = "low_confidence"
    forbid_eos: bool = False
    zero_eos_confidence: bool = False
    stop_at_eos: bool = False
    threshold: float | None = None
    cache: str = "none"
    cache_refresh: str = "block"

    def __post_init__(self) -> None:
        problem = block_schedule_problem(self.gen_length, self.block_length, self.steps)
        require(problem is None, str(problem))
        require(self.temperature >= 0, f"temperature must be ≥ 0, got {self.temperature}; set sampler.temperature")
        require_choice(self.remasking, REMASKING, "sampler.remasking")
        require(
            self.threshold is None or 0 < self.threshold <= 1,
            f"threshold must lie in (0, 1] or be null, got {self.threshold}; set sampler.threshold",
        )
        require_choice(self.cache, kv_cache.CACHE_MODES, "sampler.cache")
        require_choice(self.cache_refresh, kv_cache.CACHE_REFRESH, "sampler.cache_refresh")

    @property
    def num_blocks(self) -> int:
        """L / block_length."""
        return self.gen_length // self.block_length

    @property
    def steps_per_block(self) -> int:
        """steps / number of blocks."""
        return self.steps // self.num_blocks


@dataclass
class SampleOutput:
    """What :func:`generate` returns.

    Attributes:
        sequences: (N, P + L) prompt (with its padding) and response.
        responses: (N, L) the response tokens.
        commit_step: (N, L) the global step (0-based) at which each response token was committed, if asked.
        forward_rows: model rows evaluated (Σ over forward passes of the rows in the pass): the work done.
        forward_tokens: positions run through the layers (Σ over passes of rows × query positions): the work
            a KV cache saves (without one, every pass runs the whole sequence).
    """

    sequences: Tensor
    responses: Tensor
    commit_step: Tensor | None
    forward_rows: int
    forward_tokens: int = 0


def transfer_schedule(masked: Tensor, steps: int) -> Tensor:
    """LLaDA's ``get_num_transfer_tokens``: tokens to commit at each step of a block.

    Args:
        masked: (N,) masked positions per row at the start of the block.
        steps: steps for this block.

    Returns:
        (N, steps) long; row i has masked[i] // steps everywhere plus one on the first masked[i] % steps steps.
    """
    base = masked[:, None] // steps
    remainder = masked[:, None] % steps
    return base + (torch.arange(steps, device=masked.device)[None] < remainder).long()


def _gumbel_argmax(logits: Tensor, temperature: float, generators: Sequence[torch.Generator] | None) -> Tensor:
    """Sample argmax(log softmax(logits/T) + Gumbel) with float64 noise; greedy at T = 0.

    LLaDA computes exp(logits) / (−log u)^T; the log form argmax(logits − T·log(−log u)) has the same argmax
    without overflowing exp.
    """
    logits = logits.double()
    if temperature == 0:
        return logits.argmax(-1)
    if generators is None or len(generators) == 1:
        gen = None if generators is None else generators[0]
        u = torch.rand(logits.shape, generator=gen, device=logits.device, dtype=torch.float64)
    else:
        u = torch.stack(
            [torch.rand(logits.shape[1:], generator=g, device=logits.device, dtype=torch.float64) for g in generators]
        )
    # u = 0 has probability ~2^-53 but would give log(0); clamp keeps the noise finite.
    gumbel = -torch.log(-torch.log(u.clamp_min(torch.finfo(torch.float64).tiny)))
    return (logits + temperature * gumbel).argmax(-1)


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    prompt_ids: Tensor,
    prompt_mask: Tensor | None,
    config: SamplerConfig,
    *,
    mask_token_id: int,
    eos_token_ids: Sequence[int] = (),
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    return_commit_steps: bool = False,
) -> SampleOutput:
    """Decode responses for a batch of left-padded prompts (see the module docstring).

    Args:
        model: callable as ``model(input_ids, attention_mask, logits_to_keep=positions)`` returning logits
            (a :class:`~bgpo.models.DiffusionLM`); with ``config.cache`` other than ``none``, a model
            :func:`bgpo.kv_cache.runner_for` supports (else a ConfigError naming it).
        prompt_ids: (N, P) prompts, left-padded.
        prompt_mask: (N, P) bool, False on padding; ``None`` means no padding.
        config: decoding settings.
        mask_token_id: the mask token M.
        eos_token_ids: EOS (and EoT) ids, for ``forbid_eos``, ``zero_eos_confidence`` and ``stop_at_eos``
            (the first id is the one ``stop_at_eos`` pads with).
        generator: one generator, or one per row (then each row's draws do not depend on the batch).
        return_commit_steps: also return the step at which each response token was committed.
    """
    if prompt_ids.dim() != 2:
        raise ValueError(f"prompt_ids must be (N, P), got shape {tuple(prompt_ids.shape)}")
    n, p = prompt_ids.shape
    device = prompt_ids.device
    if prompt_mask is None:
        prompt_mask = torch.ones_like(prompt_ids, dtype=torch.bool)
    if prompt_mask.shape != prompt_ids.shape:
        raise ValueError(
            f"prompt_mask shape {tuple(prompt_mask.shape)} must equal prompt_ids {tuple(prompt_ids.shape)}"
        )
    if isinstance(generator, torch.Generator) or generator is None:
        row_generators = None
        shared = [generator] if generator is not None else None
    else:
        row_generators = list(generator)
        shared = None
        if len(row_generators) != n:
            raise ValueError(f"got {len(row_generators)} generators for {n} prompts; pass one per row or a single one")
    if (config.forbid_eos or config.zero_eos_confidence or config.stop_at_eos) and not eos_token_ids:
        raise ValueError("forbid_eos, zero_eos_confidence and stop_at_eos need eos_token_ids")
    length, block = config.gen_length, config.block_length
    eos = torch.tensor(list(eos_token_ids), device=device, dtype=torch.long)
    # Resolved before any work, so an unsupported model fails at once and by name.
    runner = None if config.cache == "none" else kv_cache.runner_for(model, "sampler.cache")

    # int64 throughout: the sampled tokens are int64, whatever integer type the caller's ids have.
    prompt_ids = prompt_ids.long()
    x = torch.cat([prompt_ids, torch.full((n, length), mask_token_id, device=device, dtype=torch.long)], dim=1)
    attn = torch.cat([prompt_mask.bool(), torch.ones(n, length, device=device, dtype=torch.bool)], dim=1)
    commit = torch.full((n, length), -1, dtype=torch.long, device=device)
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    forward_rows = 0
    forward_tokens = 0
    position_ids = None if runner is None else runner.position_ids(attn)  # (N, S), fixed for the whole decode
    step = 0  # global step counter; commit steps are comparable across blocks and rows
    for b in range(config.num_blocks):
        lo, hi = p + b * block, p + (b + 1) * block
        positions = torch.arange(lo, hi, device=device)
        block_cache = _BlockCache(runner, config, lo, hi, p + length, n, device) if runner is not None else None
        schedule = transfer_schedule((x[:, lo:hi] == mask_token_id).sum(-1), config.steps_per_block)  # (N, steps)
        for s in range(block if config.threshold is not None else config.steps_per_block):
            masked_block = x[:, lo:hi] == mask_token_id  # (N, B)
            pending = masked_block.any(-1) & ~finished
            if config.threshold is not None and not bool(pending.any()):
                break  # threshold decoding commits ≥ 1 token per step, so a block takes at most B steps
            k = pending.long() if config.threshold is not None else schedule[:, s]
            rows = (pending & (k > 0)).nonzero(as_tuple=True)[0]
            if rows.numel() > 0:  # rows that commit nothing this step are not run through the model
                if block_cache is None:
                    forward_rows += rows.numel()
                    forward_tokens += rows.numel() * x.shape[1]
                    logits = model(x[rows], attn[rows], logits_to_keep=positions)
                else:
                    logits = block_cache.logits(x, attn, position_ids, rows)
                    forward_rows += block_cache.rows_run
                    forward_tokens += block_cache.tokens_run
                logits = logits.double()  # (R, B, V)
                if config.forbid_eos:
                    logits[..., eos] = float("-inf")
                gens = shared if row_generators is None else [row_generators[i] for i in rows.tolist()]
                x0 = _gumbel_argmax(logits, config.temperature, gens)  # (R, B)
                if config.remasking == "low_confidence":
                    confidence = logits.softmax(-1).gather(-1, x0[..., None])[..., 0]
                else:
                    confidence = _uniform(x0.shape, gens, device)
                if config.zero_eos_confidence:
                    confidence = torch.where(torch.isin(x0, eos), 0.0, confidence)
                is_masked = masked_block[rows]
                confidence = torch.where(is_masked, confidence, float("-inf"))  # committed stay committed
                if config.threshold is None:
                    take = k[rows]
                else:  # Fast-dLLM: every position at or above the threshold, at least the most confident one
                    take = ((confidence >= config.threshold) & is_masked).sum(-1).clamp_min(1)
                rank = confidence.argsort(dim=-1, descending=True, stable=True).argsort(dim=-1)
                transfer = (rank < take[:, None]) & is_masked  # (R, B): the `take` most confident
                x[rows, lo:hi] = torch.where(transfer, x0, x[rows, lo:hi])
                commit[rows, lo - p : hi - p] = torch.where(transfer, step, commit[rows, lo - p : hi - p])
                if config.stop_at_eos:
                    finished |= _finish_at_eos(x, commit, p, eos, mask_token_id, step)
            step += 1
    return SampleOutput(
        sequences=x,
        responses=x[:, p:],
        commit_step=commit if return_commit_steps else None,
        forward_rows=forward_rows,
        forward_tokens=forward_tokens,
    )


class _BlockCache:
    """The KV cache of one block: built by a full pass at the block's first step, reused by its other steps.

    Rows only ever leave a block (finished, or nothing left to commit), so the cache is kept for the rows
    of the latest pass and shrunk as rows leave; ``slot[i]`` is row i's index in it (−1: none).
    """

    def __init__(self, runner: kv_cache.KVRunner, config: SamplerConfig, lo: int, hi: int, total: int,
                 n: int, device: torch.device) -> None:  # fmt: skip
        self.runner, self.lo, self.hi = runner, lo, hi
        self.every_step = config.cache_refresh == "step"
        self.cached_cols, self.query_cols = kv_cache.cached_columns(config.cache, lo, hi, total, device)
        self.block_cols = torch.arange(lo, hi, device=device)
        self.cache: kv_cache.KVCache | None = None
        self.slot = torch.full((n,), -1, dtype=torch.long, device=device)
        self.rows_run = self.tokens_run = 0  # the work of the latest call, for the sampler's accounting

    def logits(self, x: Tensor, attn: Tensor, position_ids: Tensor, rows: Tensor) -> Tensor:
        """(R, B, V) logits of the block's positions for ``rows`` (R,), from the cache where it is valid."""
        self.rows_run = self.tokens_run = 0
        fresh = self.cache is None or self.every_step or bool((self.slot[rows] < 0).any())
        if fresh:  # a full pass: the block's logits, and the keys/values of the cached columns
            logits, self.cache = self.runner.forward(
                x[rows], position_ids[rows], attn[rows], keep=self.cached_cols, logits_at=self.block_cols
            )
            self.slot.fill_(-1)
            self.slot[rows] = torch.arange(rows.numel(), device=rows.device)
            self._count(rows.numel(), x.shape[1])
            if not self.every_step:
                return logits
        elif rows.numel() < self.cache.keys[0].shape[0]:  # rows left: keep only theirs
            self.cache = self.cache.select(self.slot[rows])
            self.slot.fill_(-1)
            self.slot[rows] = torch.arange(rows.numel(), device=rows.device)
        cols = self.query_cols
        logits, _ = self.runner.forward(
            x[rows][:, cols],
            position_ids[rows][:, cols],
            attn[rows][:, cols],
            cache=self.cache,
            logits_at=torch.arange(self.hi - self.lo, device=x.device),  # the block opens the query columns
        )
        self._count(rows.numel(), cols.numel())
        return logits

    def _count(self, rows: int, tokens_per_row: int) -> None:
        self.rows_run += rows
        self.tokens_run += rows * tokens_per_row


def _uniform(shape: torch.Size, gens: Sequence[torch.Generator] | None, device: torch.device) -> Tensor:
    """Uniform confidences for random remasking, from the shared or the per-row generators."""
    if gens is None or len(gens) == 1:
        return torch.rand(shape, generator=None if gens is None else gens[0], device=device, dtype=torch.float64)
    return torch.stack([torch.rand(shape[1:], generator=g, device=device, dtype=torch.float64) for g in gens])


def _finish_at_eos(x: Tensor, commit: Tensor, p: int, eos: Tensor, mask_id: int, step: int) -> Tensor:
    """Rows whose first EOS and every position before it are committed; their remaining masks become EOS."""
    response = x[:, p:]
    is_eos = torch.isin(response, eos)
    has_eos = is_eos.any(-1)
    first = torch.where(has_eos, is_eos.long().argmax(-1), response.shape[1])
    before = torch.arange(response.shape[1], device=x.device)[None] < first[:, None]
    done = has_eos & ~((response == mask_id) & before).any(-1)
    fill = done[:, None] & (response == mask_id)
    response[fill] = eos[0]
    commit[fill] = step
    return done
