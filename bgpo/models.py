"""Masked diffusion language models (dLLMs) behind one interface.

A :class:`DiffusionLM` maps ``(input_ids, attention_mask)`` to per-position logits with bidirectional
attention, and knows its tokenizer and its mask / EOS / EoT / pad ids. Two sources:

* :func:`load_model`: a Hugging Face model by hub name or local path (LLaDA-8B-Instruct through
  ``trust_remote_code``; mask id 126336, EOS 126081, EoT 126348, SPEC §4).
* :func:`build_model`: a LLaDA-architecture model from a preset with random weights: Llama blocks
  (RMSNorm, SwiGLU, RoPE, no biases) with ``is_causal=False``. Presets range from ``nano`` / ``tiny`` for
  CPU to ``llada-8b`` with LLaDA-8B's shapes.

Small models use a tokenizer trained locally with ``tokenizers`` (:func:`train_tokenizer`) that has a
mask token; :meth:`DiffusionLM.save_pretrained` stores model, tokenizer and ids together so that
:func:`load_model` restores all three.

The causal-LM loss of ``LlamaForCausalLM`` is never used: it shifts labels by one position, which is
wrong for a masked diffusion model. Only logits are taken from the backbone.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from . import adapters
from .config import ConfigError, unknown_name_error

# Special tokens of locally trained tokenizers.
PAD_TOKEN = "<|pad|>"
EOS_TOKEN = "<|eos|>"
EOT_TOKEN = "<|eot|>"
MASK_TOKEN = "<|mask|>"
UNK_TOKEN = "<|unk|>"
SPECIAL_TOKENS = [PAD_TOKEN, EOS_TOKEN, EOT_TOKEN, MASK_TOKEN, UNK_TOKEN]

# LLaDA-8B-Instruct's ids (SPEC §4); used when a LLaDA checkpoint does not declare them itself.
LLADA_MASK_TOKEN_ID = 126336
LLADA_EOS_TOKEN_ID = 126081
LLADA_EOT_TOKEN_ID = 126348
LLADA_MASK_TOKEN = "<|mdm_mask|>"

# Architecture presets. All use Llama blocks with bidirectional attention (LLaDA's architecture).
# ``vocab_size`` is taken from the tokenizer unless the preset fixes it.
PRESETS: dict[str, dict[str, Any]] = {
    # ≈0.27M parameters with a ~30-symbol vocabulary: the fastest useful size on 2 CPU cores
    # (../shared/notes/tiny-profile-measurements.md).
    "nano": dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256),
    # ≈1.1M parameters.
    "tiny": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512),
    # ≈6.3M parameters.
    "small": dict(hidden_size=256, num_hidden_layers=6, num_attention_heads=8, intermediate_size=1024),
    # ≈34M parameters.
    "medium": dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, intermediate_size=2048),
    # LLaDA-8B's shapes (GSAI-ML/LLaDA-8B-Instruct config.json): 32 layers, d_model 4096, 32 heads
    # (no GQA), SwiGLU hidden 12288, vocabulary 126464, RoPE θ = 500000, RMSNorm ε = 1e-5, untied
    # embeddings, context 4096. ≈8.0B parameters.
    "llada-8b": dict(
        hidden_size=4096,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        intermediate_size=12288,
        vocab_size=126464,
        rope_theta=500000.0,
        rms_norm_eps=1e-5,
        max_position_embeddings=4096,
    ),
}


class DiffusionLM(nn.Module):
    """A masked diffusion language model: bidirectional logits plus its tokenizer and special ids.

    Args:
        backbone: a Hugging Face model whose forward returns ``.logits`` of shape (N, S, V).
        tokenizer: its tokenizer.
        mask_token_id: the id of the mask token M of the forward process.
        eos_token_id: end of sequence (LLaDA pads generations with it).
        pad_token_id: the id used for left-padding prompts.
        eot_token_id: end of turn, if the model has one (LLaDA's ``<|eot_id|>``).
    """

    def __init__(
        self,
        backbone: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        mask_token_id: int,
        eos_token_id: int,
        pad_token_id: int,
        eot_token_id: int | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.mask_token_id = int(mask_token_id)
        self.eos_token_id = int(eos_token_id)
        self.pad_token_id = int(pad_token_id)
        self.eot_token_id = None if eot_token_id is None else int(eot_token_id)
        # A peft wrapper takes **kwargs and passes them on: look at the model it wraps.
        base = backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone
        accepted = inspect.signature(base.forward).parameters
        has_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
        # LLaDA's remote code takes neither position ids nor logits_to_keep; Llama takes both.
        self._takes_position_ids = "position_ids" in accepted
        self._takes_logits_to_keep = "logits_to_keep" in accepted
        self._takes_use_cache = "use_cache" in accepted or has_kwargs

    @property
    def vocab_size(self) -> int:
        """Size of the output vocabulary (the logits' last dimension)."""
        return int(self.backbone.get_output_embeddings().weight.shape[0])

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, logits_to_keep: int | Tensor = 0
    ) -> Tensor:
        """Return logits at all positions or only at the positions ``logits_to_keep`` selects.

        Args:
            input_ids: (N, S) token ids, prompts left-padded.
            attention_mask: (N, S), 1 for real tokens and 0 for padding; ``None`` means no padding.
            logits_to_keep: which positions to project onto the vocabulary (the LM head is the largest
                matrix of LLaDA-8B, so this saves time and memory):
                ``0`` all, giving (N, S, V); a positive int k the last k, giving (N, k, V); a 1-D index
                tensor, the same positions in every row, giving (N, len, V); a 2-D bool (N, S) mask,
                giving the selected positions flattened row by row, (count, V).
        """
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be 2-D (batch, sequence), got shape {tuple(input_ids.shape)}")
        kwargs: dict[str, Any] = {"input_ids": input_ids}
        if attention_mask is not None:
            if attention_mask.shape != input_ids.shape:
                raise ValueError(
                    f"attention_mask shape {tuple(attention_mask.shape)} must equal input_ids shape "
                    f"{tuple(input_ids.shape)}"
                )
            kwargs["attention_mask"] = attention_mask.long()
            if self._takes_position_ids:
                # Positions count real tokens only, so a left-padded prompt sees the same rotary
                # angles as the unpadded one (RoPE is relative, but its float32 angles are not exact).
                kwargs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
        if self._takes_use_cache:
            kwargs["use_cache"] = False
        selective = isinstance(logits_to_keep, Tensor) or logits_to_keep != 0
        per_row_mask = isinstance(logits_to_keep, Tensor) and logits_to_keep.dim() == 2
        if selective and self._takes_logits_to_keep and (adapters.MASK_LOGITS_TO_KEEP or not per_row_mask):
            kwargs["logits_to_keep"] = logits_to_keep
            return self.backbone(**kwargs).logits
        logits = self.backbone(**kwargs).logits
        if not selective:
            return logits
        if isinstance(logits_to_keep, int):
            return logits[:, -logits_to_keep:]
        if logits_to_keep.dim() == 2:
            return logits[logits_to_keep]
        return logits[:, logits_to_keep]

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of (trainable) parameters of the backbone."""
        return sum(p.numel() for p in self.backbone.parameters() if p.requires_grad or not trainable_only)

    def save_pretrained(self, path: str | os.PathLike[str], state_dict: dict[str, Tensor] | None = None) -> None:
        """Save backbone, tokenizer and special ids to ``path`` so that :func:`load_model` restores them.

        Args:
            path: the directory.
            state_dict: the full weights when the module's own are sharded (FSDP, ZeRO-3: pass
                ``accelerator.get_state_dict(model)``); keys of this module (``backbone.…``) or of the backbone.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        cfg = self.backbone.config
        cfg.mask_token_id = self.mask_token_id
        cfg.eos_token_id = self.eos_token_id
        cfg.pad_token_id = self.pad_token_id
        cfg.eot_token_id = self.eot_token_id
        if state_dict is not None:
            state_dict = {k.removeprefix("backbone."): v for k, v in state_dict.items()}
        self.backbone.save_pretrained(path, state_dict=state_dict)
        self.tokenizer.save_pretrained(path)


def _first_id(*candidates: int | None) -> int | None:
    for c in candidates:
        if c is not None:
            return int(c)
    return None


def _token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int | None:
    ids = tokenizer.convert_tokens_to_ids([token])
    tid = ids[0] if ids else None
    return None if tid is None or tid == tokenizer.unk_token_id else int(tid)


def _config_id(config: Any, name: str) -> int | None:
    value = getattr(config, name, None)
    if isinstance(value, list):  # some configs list several EOS ids; the first is the main one
        value = value[0] if value else None
    return None if value is None else int(value)


def resolve_special_ids(
    config: Any,
    tokenizer: PreTrainedTokenizerBase,
    *,
    mask_token_id: int | None = None,
    eos_token_id: int | None = None,
    eot_token_id: int | None = None,
    pad_token_id: int | None = None,
) -> dict[str, int | None]:
    """Find the mask / EOS / EoT / pad ids of a model, explicit arguments first.

    Order: the argument, then the model config (``mask_token_id`` is saved there by
    :meth:`DiffusionLM.save_pretrained`), then the tokenizer, then LLaDA's defaults for LLaDA models.

    Raises:
        ConfigError: if no mask id can be found.
    """
    is_llada = "llada" in str(getattr(config, "model_type", "")).lower()
    mask = _first_id(
        mask_token_id,
        _config_id(config, "mask_token_id"),
        tokenizer.mask_token_id,
        _token_id(tokenizer, LLADA_MASK_TOKEN),
        _token_id(tokenizer, MASK_TOKEN),
        LLADA_MASK_TOKEN_ID if is_llada else None,
    )
    if mask is None:
        raise ConfigError(
            "cannot find the mask token id of this model: its config and tokenizer declare none; "
            "pass mask_token_id (model.mask_token_id in a config)"
        )
    eos = _first_id(
        eos_token_id,
        tokenizer.eos_token_id,
        _config_id(config, "eos_token_id"),
        LLADA_EOS_TOKEN_ID if is_llada else None,
    )
    if eos is None:
        raise ConfigError("cannot find the EOS token id of this model; pass eos_token_id (model.eos_token_id)")
    eot = _first_id(
        eot_token_id,
        _config_id(config, "eot_token_id"),
        _token_id(tokenizer, "<|eot_id|>"),
        _token_id(tokenizer, EOT_TOKEN),
        LLADA_EOT_TOKEN_ID if is_llada else None,
    )
    pad = _first_id(pad_token_id, tokenizer.pad_token_id, _config_id(config, "pad_token_id"), eos)
    return {"mask_token_id": mask, "eos_token_id": eos, "eot_token_id": eot, "pad_token_id": pad}


def load_model(
    name_or_path: str | os.PathLike[str],
    *,
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    trust_remote_code: bool = True,
    revision: str | None = None,
    attn_implementation: str | None = None,
    **special_ids: int | None,
) -> DiffusionLM:
    """Load a masked diffusion LM and its tokenizer from the Hugging Face hub or a local directory.

    Works for LLaDA-8B-Instruct (``GSAI-ML/LLaDA-8B-Instruct``, remote code) and for any directory written
    by :meth:`DiffusionLM.save_pretrained`. Special ids can be overridden with ``mask_token_id=...`` etc.

    Args:
        name_or_path: a hub id or a local directory.
        dtype: parameter dtype (``"bfloat16"``, ``torch.float32``...); ``None`` keeps the saved one.
        device: where to put the model; ``None`` leaves it on CPU.
        trust_remote_code: needed for LLaDA's own modelling code.
        revision: a hub revision to pin.
        attn_implementation: e.g. ``"sdpa"`` or ``"eager"``, where the model supports the choice.
    """
    unknown = set(special_ids) - {"mask_token_id", "eos_token_id", "eot_token_id", "pad_token_id"}
    if unknown:
        raise unknown_name_error(
            "keyword", sorted(unknown)[0], ["mask_token_id", "eos_token_id", "eot_token_id", "pad_token_id"]
        )
    if isinstance(dtype, str):
        dtype = _parse_dtype(dtype)
    local = Path(name_or_path)
    if local.is_dir() and not (local / "config.json").is_file():
        raise ConfigError(f"{name_or_path} is not a model directory: it has no config.json")
    common: dict[str, Any] = {"trust_remote_code": trust_remote_code, "revision": revision}
    try:
        config = AutoConfig.from_pretrained(name_or_path, **common)
    except (ValueError, KeyError) as err:  # an unknown model_type, or remote code not trusted
        raise ConfigError(f"cannot load the config of {name_or_path}: {err}") from None
    except OSError as err:  # no such folder, and no hub id that can be reached (offline, or not on the hub)
        raise ConfigError(
            f"no model at {name_or_path}: not a model directory here, nor a hub model that can be reached "
            f"({str(err).splitlines()[0]})"
        ) from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **common)
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot load the tokenizer of {name_or_path}: {err}") from None
    adapters.complete_config(config)
    kwargs: dict[str, Any] = dict(common, config=config)
    if dtype is not None:
        kwargs.update(adapters.dtype_kwarg(dtype))
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    cls = adapters.remote_class(config, str(name_or_path), revision=revision) if trust_remote_code else None
    if cls is not None:  # remote code (LLaDA and its derivatives): bridge what it lacks, then load it directly
        adapters.patch_remote_class(cls)
        backbone = cls.from_pretrained(name_or_path, **kwargs)
    else:
        backbone = AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)
    adapters.complete_config(backbone.config)
    if getattr(backbone.config, "is_causal", None) is True:
        raise ConfigError(
            f"{name_or_path} is a causal model (config.is_causal=True); a masked diffusion model needs "
            "bidirectional attention"
        )
    ids = resolve_special_ids(config, tokenizer, **special_ids)
    model = DiffusionLM(backbone, tokenizer, **ids)  # type: ignore[arg-type]
    if device is not None:
        model.to(device)
    return model


def _parse_dtype(name: str) -> torch.dtype:
    table = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "float64": torch.float64,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if name not in table:
        raise unknown_name_error("dtype", name, table)
    return table[name]


def preset_config(preset: str, vocab_size: int | None = None, **overrides: Any) -> LlamaConfig:
    """Return the bidirectional :class:`LlamaConfig` of a preset.

    Args:
        preset: one of :data:`PRESETS`.
        vocab_size: the tokenizer's size; required unless the preset fixes it.
        overrides: any ``LlamaConfig`` field, e.g. ``num_hidden_layers=2``.
    """
    if preset not in PRESETS:
        raise unknown_name_error("model preset", preset, PRESETS)
    values = dict(PRESETS[preset])
    values.update(overrides)
    if vocab_size is not None:
        values.setdefault("vocab_size", vocab_size)  # presets with a fixed vocabulary (llada-8b) keep theirs
    if "vocab_size" not in values:
        raise ConfigError(f"preset {preset!r} needs a vocab_size (pass the tokenizer)")
    rope_theta = values.pop("rope_theta", 10000.0)
    values.setdefault("num_key_value_heads", values["num_attention_heads"])
    values.setdefault("max_position_embeddings", 2048)
    values.setdefault("rms_norm_eps", 1e-5)
    return LlamaConfig(
        **values,
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        is_causal=False,  # LLaDA: every position attends to every other position
        use_cache=False,  # a KV cache is meaningless when every step re-reads the whole sequence
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
    )


def build_model(
    preset: str,
    tokenizer: PreTrainedTokenizerBase,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    **overrides: Any,
) -> DiffusionLM:
    """Build a LLaDA-architecture model with random weights from a preset.

    Args:
        preset: a key of :data:`PRESETS` (``nano``, ``tiny``, ``small``, ``medium``, ``llada-8b``).
        tokenizer: the tokenizer; it must have a mask token (see :func:`train_tokenizer`) unless the
            preset is ``llada-8b`` (which uses LLaDA's ids).
        seed: seed of the weight initialisation (the global RNG is restored afterwards).
        dtype: parameter dtype.
        device: ``"meta"`` builds shapes only (e.g. to count LLaDA-8B's parameters without memory).
        overrides: ``LlamaConfig`` fields that replace the preset's.
    """
    config = preset_config(preset, vocab_size=len(tokenizer), **overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.device(device or "cpu"):
            backbone = LlamaForCausalLM(config)
    backbone.to(dtype)
    backbone.eval()  # no dropout in these models; eval() also keeps HF from warning about training mode
    ids = resolve_special_ids(
        config,
        tokenizer,
        **(
            dict(
                mask_token_id=LLADA_MASK_TOKEN_ID,
                eos_token_id=LLADA_EOS_TOKEN_ID,
                eot_token_id=LLADA_EOT_TOKEN_ID,
            )
            if preset == "llada-8b" and tokenizer.mask_token_id is None
            else {}
        ),
    )
    return DiffusionLM(backbone, tokenizer, **ids)  # type: ignore[arg-type]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 64, *, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """Train a small BPE tokenizer with the special tokens a dLLM needs (pad, EOS, EoT, mask, unk).

    Digits are always single tokens (arithmetic stays learnable) and spaces are kept with a Metaspace
    pre-tokenizer, so ``decode(encode(s)) == s`` for text made of seen characters.

    Args:
        texts: the training corpus.
        vocab_size: the target vocabulary size, special tokens and the alphabet included.
        min_frequency: the minimum count of a pair to merge.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    texts = list(texts)
    if not texts:
        raise ValueError("train_tokenizer needs at least one text")
    alphabet = sorted(set("".join(texts)) - {" "})
    min_size = len(SPECIAL_TOKENS) + len(alphabet) + 1  # + the Metaspace marker
    if vocab_size < min_size:
        raise ConfigError(
            f"vocab_size={vocab_size} is smaller than the special tokens plus the corpus alphabet "
            f"({min_size}); raise tokenizer.vocab_size to at least {min_size}"
        )
    tok = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Metaspace(prepend_scheme="never"), pre_tokenizers.Digits(individual_digits=True)]
    )
    tok.decoder = decoders.Metaspace(prepend_scheme="never")
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD_TOKEN,
        eos_token=EOS_TOKEN,
        mask_token=MASK_TOKEN,
        unk_token=UNK_TOKEN,
        additional_special_tokens=[EOT_TOKEN],
        padding_side="left",  # prompts are left-padded so that responses line up on the right
    )
