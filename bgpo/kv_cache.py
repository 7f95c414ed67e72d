"""Block-wise approximate KV caching for the sampler (Fast-dLLM's prefix and dual caches).

A masked diffusion LM attends bidirectionally, so no key or value is ever final: a token committed in the
current block changes every position's hidden states. Fast-dLLM observed that the keys and values of
positions *outside* the block being decoded change little while the block is decoded, so they can be
computed once at the start of the block (a full forward pass) and reused by the block's remaining steps,
which then run only the positions that change:

* ``prefix``: the prompt and the completed blocks are cached; a step runs the current block and the masked
  suffix after it.
* ``dual``: the suffix of masks after the block is cached too; a step runs the current block only.

This module holds the per-model code behind one interface, :class:`KVRunner`: a forward pass over some
query positions that attends to cached keys/values plus the queries' own, and can store the keys/values of
chosen positions for later steps. Keys are stored *after* RoPE, each with its own position, so a cache may
hold any set of positions in any order (bidirectional attention does not care about order). Two runners:

* :class:`LlamaRunner`: Hugging Face decoder stacks shaped like Llama (``model.layers[i].self_attn.q_proj``
  ..., ``model.rotary_emb``, ``model.norm``, ``lm_head``): this suite's own :class:`~bgpo.models.DiffusionLM`
  models (``LlamaForCausalLM`` with ``is_causal=False``). Padding keys are masked and positions count real
  tokens only, exactly as :meth:`~bgpo.models.DiffusionLM.forward` does.
* :class:`LLaDARunner`: LLaDA's remote code (``LLaDAModelLM``), whose own forward refuses a KV cache. Its
  attention ignores the attention mask and its RoPE positions are the sequence indices, padding included;
  the runner reproduces that (it must give the model's own logits, see ``tests/test_llada.py``).

:func:`runner_for` picks the runner from the model's *structure*; a model with neither raises a
:class:`~bgpo.config.ConfigError` naming its class and the option (never a silent fallback to exact
decoding, which would be a different speed under the same name). A model may also provide its own runner
through a ``kv_runner()`` method.

What is deliberately omitted: dropout (decoding runs in eval mode), LLaDA's block groups and fine-grained
activation checkpointing (training-time features), models with per-head query/key norms, and sharded
parameters (FSDP, ZeRO-3: the runners call a block's submodules, bypassing the hooks that gather its
parameters; :func:`runner_for` refuses such a model). DDP and LoRA work (LoRA layers sit inside the
submodules called).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ConfigError

CACHE_MODES = ("none", "prefix", "dual")
CACHE_REFRESH = ("block", "step")


@dataclass
class KVCache:
    """Per-layer keys and values of some positions of some rows.

    Attributes:
        keys: per layer, (R, H_kv, C, D) keys after RoPE.
        values: per layer, (R, H_kv, C, D).
        key_mask: (R, C) bool, False on padding keys (``None``: every key is attended, LLaDA's convention).
    """

    keys: list[Tensor]
    values: list[Tensor]
    key_mask: Tensor | None

    def select(self, index: Tensor) -> KVCache:
        """The cache of rows ``index`` (R',) only."""
        return KVCache(
            keys=[k[index] for k in self.keys],
            values=[v[index] for v in self.values],
            key_mask=None if self.key_mask is None else self.key_mask[index],
        )


@runtime_checkable
class KVRunner(Protocol):
    """A model's forward pass over chosen query positions against cached keys/values."""

    def position_ids(self, attention_mask: Tensor) -> Tensor:
        """(N, S) the RoPE position of every token, as the model's own forward assigns them."""
        ...

    def forward(
        self,
        input_ids: Tensor,
        position_ids: Tensor,
        key_mask: Tensor,
        *,
        cache: KVCache | None = None,
        keep: Tensor | None = None,
        logits_at: Tensor | None = None,
    ) -> tuple[Tensor, KVCache | None]:
        """Logits at some query positions, and optionally the keys/values of some of them.

        Args:
            input_ids: (R, Q) the query tokens.
            position_ids: (R, Q) their RoPE positions (from :meth:`position_ids`).
            key_mask: (R, Q) bool, False where the query token is padding (it is then no key for anyone).
            cache: keys/values of other positions of the same rows, attended to besides the queries' own.
            keep: (C,) columns of the queries whose keys/values to return as a new cache.
            logits_at: (Q',) columns of the queries to project onto the vocabulary (default: all).

        Returns:
            (R, Q', V) logits and the new cache (``None`` without ``keep``).
        """
        ...


def _attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float | None) -> Tensor:
    """Bidirectional attention (R, H, Q, D) of the queries over the keys; ``mask`` (R, K) bool masks keys."""
    if k.shape[1] != q.shape[1]:  # grouped-query attention: each key head serves several query heads
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
        v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    attn_mask = None if mask is None else mask[:, None, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)


def _join(cache: KVCache | None, layer: int, k: Tensor, v: Tensor, mask: Tensor | None) -> tuple[Tensor, ...]:
    """Cached keys/values of ``layer`` followed by the queries' own (the order is irrelevant: no causal mask)."""
    if cache is None:
        return k, v, mask
    joined_mask = None if mask is None or cache.key_mask is None else torch.cat([cache.key_mask, mask], dim=1)
    return torch.cat([cache.keys[layer], k], dim=2), torch.cat([cache.values[layer], v], dim=2), joined_mask


def _base(backbone: nn.Module) -> nn.Module:
    """The model inside a peft wrapper (LoRA layers stay in place, so calling submodules includes them)."""
    return backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone


class LlamaRunner:
    """:class:`KVRunner` for Hugging Face Llama-shaped decoders run bidirectionally (this suite's models).

    Mirrors ``LlamaForCausalLM.forward`` with ``is_causal=False``: embeddings, per layer RMSNorm → q/k/v →
    RoPE → attention (padding keys masked) → o_proj → residual → RMSNorm → MLP → residual; final norm; LM head.
    """

    def __init__(self, backbone: nn.Module) -> None:
        base = _base(backbone)
        self.inner = base.model
        self.lm_head = base.lm_head
        self.layers = list(self.inner.layers)
        attn = self.layers[0].self_attn
        # The attention module's own RoPE helper, so a model family's variant (e.g. partial rotary) is kept.
        self._apply_rope = sys.modules[type(attn).__module__].apply_rotary_pos_emb

    def position_ids(self, attention_mask: Tensor) -> Tensor:
        """Positions count real tokens only (as DiffusionLM.forward): a left-padded prompt keeps its angles."""
        return (attention_mask.long().cumsum(-1) - 1).clamp_min(0)

    def forward(
        self,
        input_ids: Tensor,
        position_ids: Tensor,
        key_mask: Tensor,
        *,
        cache: KVCache | None = None,
        keep: Tensor | None = None,
        logits_at: Tensor | None = None,
    ) -> tuple[Tensor, KVCache | None]:
        """See :meth:`KVRunner.forward`."""
        h = self.inner.embed_tokens(input_ids)  # (R, Q, d)
        cos, sin = self.inner.rotary_emb(h, position_ids)
        mask = key_mask.bool()
        keys, values = [], []
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            x = layer.input_layernorm(h)
            shape = (*x.shape[:-1], -1, attn.head_dim)
            q = attn.q_proj(x).view(shape).transpose(1, 2)  # (R, H, Q, D)
            k = attn.k_proj(x).view(shape).transpose(1, 2)  # (R, H_kv, Q, D)
            v = attn.v_proj(x).view(shape).transpose(1, 2)
            q, k = self._apply_rope(q, k, cos, sin)
            if keep is not None:
                keys.append(k[:, :, keep])
                values.append(v[:, :, keep])
            k_all, v_all, m_all = _join(cache, i, k, v, mask)
            out = _attend(q, k_all, v_all, m_all, attn.scaling)  # (R, H, Q, D)
            h = h + attn.o_proj(out.transpose(1, 2).reshape(*x.shape[:-1], -1))
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        if logits_at is not None:
            h = h[:, logits_at]
        logits = self.lm_head(self.inner.norm(h))
        new = None if keep is None else KVCache(keys, values, mask[:, keep])
        return logits, new


class LLaDARunner:
    """:class:`KVRunner` for LLaDA's remote code (``LLaDAModelLM`` with ``LLaDALlamaBlock`` blocks).

    Mirrors ``LLaDAModel.forward`` and ``LLaDALlamaBlock.forward``: embeddings (× √d if ``input_emb_norm``),
    per block attn_norm → q/k/v (optional q/k layer norms) → RoPE at the given positions → attention over
    every key (LLaDA ignores the attention mask) → attn_out → residual → ff_norm → SwiGLU(ff_proj) × up_proj
    → ff_out → residual; ln_f; the output head (tied or not, scaled if ``scale_logits``).
    """

    def __init__(self, backbone: nn.Module) -> None:
        base = _base(backbone)
        self.model = base.model
        self.config = self.model.config
        self.transformer = self.model.transformer
        self.blocks = list(self.transformer.blocks)

    def position_ids(self, attention_mask: Tensor) -> Tensor:
        """LLaDA's RoPE positions are the sequence indices, padding included."""
        n, s = attention_mask.shape
        return torch.arange(s, device=attention_mask.device).expand(n, s)

    def _rope(self, block: nn.Module, t: Tensor, positions: Tensor) -> Tensor:
        """LLaDA's rotary embedding of (R, H, Q, D) at explicit positions (R, Q)."""
        rotary = block.rotary_emb
        sin, cos = rotary.get_rotary_embedding(int(positions.max()) + 1, t.device)  # (1, 1, L, D)
        t_ = t.float() if self.config.rope_full_precision else t
        sin = sin[0, 0][positions][:, None].type_as(t_)  # (R, 1, Q, D)
        cos = cos[0, 0][positions][:, None].type_as(t_)
        return rotary.apply_rotary_pos_emb(sin, cos, t_).type_as(t)

    def forward(
        self,
        input_ids: Tensor,
        position_ids: Tensor,
        key_mask: Tensor,
        *,
        cache: KVCache | None = None,
        keep: Tensor | None = None,
        logits_at: Tensor | None = None,
    ) -> tuple[Tensor, KVCache | None]:
        """See :meth:`KVRunner.forward`; ``key_mask`` is ignored, as LLaDA's attention ignores padding."""
        cfg = self.config
        h = self.transformer.wte(input_ids)
        if cfg.input_emb_norm:
            h = h * (cfg.d_model**0.5)
        h = self.transformer.emb_drop(h)
        r, q_len, d = h.shape
        head = d // cfg.n_heads
        keys, values = [], []
        for i, block in enumerate(self.blocks):
            x = block.attn_norm(h)
            q, k, v = block.q_proj(x), block.k_proj(x), block.v_proj(x)
            if block.q_norm is not None and block.k_norm is not None:
                q, k = block.q_norm(q).to(k.dtype), block.k_norm(k).to(k.dtype)
            q = q.view(r, q_len, cfg.n_heads, head).transpose(1, 2)
            k = k.view(r, q_len, cfg.effective_n_kv_heads, head).transpose(1, 2)
            v = v.view(r, q_len, cfg.effective_n_kv_heads, head).transpose(1, 2)
            q, k = self._rope(block, q, position_ids), self._rope(block, k, position_ids)
            if keep is not None:
                keys.append(k[:, :, keep])
                values.append(v[:, :, keep])
            k_all, v_all, _ = _join(cache, i, k, v, None)
            out = _attend(q, k_all, v_all, None, None)
            h = h + block.attn_out(out.transpose(1, 2).contiguous().view(r, q_len, d))
            y = block.ff_norm(h)
            y = block.act(block.ff_proj(y)) * block.up_proj(y)
            h = h + block.ff_out(y)
        if logits_at is not None:
            h = h[:, logits_at]
        h = self.transformer.ln_f(h)
        if cfg.weight_tying:
            logits = F.linear(h, self.transformer.wte.weight, None)
        else:
            logits = self.transformer.ff_out(h)
        if cfg.scale_logits:
            logits = logits * (1 / cfg.d_model**0.5)
        new = None if keep is None else KVCache(keys, values, None)
        return logits, new


def _is_sharded(module: nn.Module) -> bool:
    """Whether parameters are sharded across processes (FSDP2 DTensors, FSDP1 wrappers, ZeRO-3 partitions)."""
    if any("FullyShardedDataParallel" in type(m).__name__ for m in module.modules()):
        return True
    return any(type(p).__name__ == "DTensor" or hasattr(p, "ds_id") for p in module.parameters())


def _is_llama_shaped(base: nn.Module) -> bool:
    inner = getattr(base, "model", None)
    layers = getattr(inner, "layers", None)
    if layers is None or len(layers) == 0 or not hasattr(base, "lm_head"):
        return False
    if not all(hasattr(inner, name) for name in ("embed_tokens", "rotary_emb", "norm")):
        return False
    layer = layers[0]
    attn = getattr(layer, "self_attn", None)
    needed = ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim", "scaling")
    return (
        attn is not None
        and all(hasattr(attn, name) for name in needed)
        # per-head q/k norms (Qwen3, OLMo2) or sliding windows change the maths: not mirrored here
        and not hasattr(attn, "q_norm")
        and getattr(attn, "sliding_window", None) is None
        and all(hasattr(layer, name) for name in ("input_layernorm", "post_attention_layernorm", "mlp"))
        and hasattr(sys.modules[type(attn).__module__], "apply_rotary_pos_emb")
    )


def _is_llada_shaped(base: nn.Module) -> bool:
    transformer = getattr(getattr(base, "model", None), "transformer", None)
    blocks = getattr(transformer, "blocks", None) if transformer is not None else None
    config = getattr(getattr(base, "model", None), "config", None)
    if blocks is None or len(blocks) == 0 or config is None:
        return False
    needed = ("attn_norm", "ff_norm", "q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out")
    return (
        all(hasattr(blocks[0], name) for name in needed)
        and getattr(config, "block_group_size", 1) == 1
        and getattr(config, "rope", False)
        and not getattr(config, "alibi", False)
    )


def attends_to_padding(model: nn.Module) -> bool:
    """True for LLaDA's remote code, whose attention ignores the attention mask: a left-padded prompt attends
    to its padding, so its logits depend on how much padding its batch adds (the Llama presets mask it)."""
    return _is_llada_shaped(_base(getattr(model, "backbone", model)))


def runner_for(model: nn.Module, option: str = "sampler.cache") -> KVRunner:
    """The :class:`KVRunner` of ``model`` (a DiffusionLM, its backbone, or a model with ``kv_runner()``).

    Raises:
        ConfigError: naming the model class and ``option`` when the model exposes no keys/values this suite
            can drive.
    """
    own = getattr(model, "kv_runner", None)
    if callable(own):
        return own()
    backbone = getattr(model, "backbone", model)
    base = _base(backbone)
    if _is_sharded(base):
        # The runners call a block's submodules directly; FSDP gathers a block's parameters in hooks on the
        # block's own forward, which they bypass. Refuse rather than compute with shards.
        raise ConfigError(
            f"{type(base).__name__} has FSDP/ZeRO-3-sharded parameters, which the sampler's KV cache cannot run "
            f"(it bypasses the blocks' parameter gathering); set {option}: none with sharded training"
        )
    if _is_llada_shaped(base):
        return LLaDARunner(backbone)
    if _is_llama_shaped(base):
        return LlamaRunner(backbone)
    raise ConfigError(
        f"{type(base).__name__} exposes no keys/values the sampler's KV cache can use (supported: Hugging Face "
        f"Llama-shaped decoders and LLaDA's remote code); set {option}: none for exact decoding"
    )


def cached_columns(mode: str, lo: int, hi: int, total: int, device: Any) -> tuple[Tensor, Tensor]:
    """Which columns a block's cache holds and which columns each step runs.

    Args:
        mode: ``prefix`` or ``dual``.
        lo, hi: the current block's columns [lo, hi) in the (N, S) sequence of ``total`` columns.

    Returns:
        (cached columns, query columns): prefix caches [0, lo) and runs [lo, S); dual caches [0, lo) ∪ [hi, S)
        and runs [lo, hi).
    """
    every = torch.arange(total, device=device)
    if mode == "prefix":
        return every[:lo], every[lo:]
    if mode == "dual":
        return torch.cat([every[:lo], every[hi:]]), every[lo:hi]
    raise ConfigError(f"sampler.cache must be one of {', '.join(map(repr, CACHE_MODES[1:]))} here, got {mode!r}")
