"""The method registry and the contract every RL method follows.

A method turns a rollout batch into **loss chunks**; the caller runs backward on each chunk as it arrives
and steps the optimiser once the mini-batch is done. That is the whole difference between methods:
sampling, masking, likelihood estimators, advantages, the optimiser and the trainer are shared.

* :meth:`Method.prepare` runs once per mini-batch at the old policy θ_old, under ``torch.no_grad``: it
  draws the method's randomness from an explicit generator (e.g. the MC masks) and computes the
  old-policy values on it. It returns a dict of tensors whose first dimension is N (one row per
  response), so that the shared driver can slice it into micro-batches.
* :meth:`Method.loss_chunks` yields :class:`LossChunk` objects; each chunk's ``loss`` is the **sum over
  the chunk's responses** of their loss contribution. The driver divides by the normaliser (the number of
  responses in the optimiser step) and calls backward. BGPO yields one chunk per MC sample, so each
  sample's graph is freed before the next is built; a non-linear objective yields one chunk holding all
  samples.

Register a method with ``@register_method("name")``; the name is the same string in the registry, the
module file, configs, Snakemake wildcards and result tables. Methods in :mod:`bgpo.methods` and every
module of the top-level ``baselines`` package are discovered on first lookup.
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..batch import RolloutBatch
from ..config import ConfigError, from_dict, unknown_name_error

_REGISTRY: dict[str, type[Method]] = {}
_DISCOVERED = False
# Packages whose modules register methods when imported.
METHOD_PACKAGES = ("bgpo.methods", "baselines")


@dataclass
class LossChunk:
    """One backward pass worth of loss.

    Attributes:
        loss: scalar, the sum over this chunk's responses of their loss (before normalisation).
        metrics: detached scalars to log, summed over chunks by the driver (e.g. the objective value).
    """

    loss: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class MethodConfig:
    """Base class of method configs (dataclasses validated in ``__post_init__``)."""


class Method(ABC):
    """An RL method: how a rollout batch becomes loss chunks (see the module docstring).

    Class attributes set by subclasses:
        name: the registry key (set by :func:`register_method`).
        Config: the method's config dataclass.
        zero_advantage_is_zero_loss: True if responses with A = 0 contribute neither loss nor gradient,
            so the driver may skip them (keeping the normaliser).
    """

    name: ClassVar[str]
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    zero_advantage_is_zero_loss: bool = False

    def __init__(self, config: MethodConfig | None = None) -> None:
        self.config = config if config is not None else self.Config()
        if not isinstance(self.config, self.Config):
            raise TypeError(f"{type(self).__name__} takes a {self.Config.__name__}, got {type(self.config).__name__}")

    @property
    def updates_per_batch(self) -> int:
        """Optimiser passes over each mini-batch (d1's μ inner updates; 1 for the paper's methods)."""
        return 1

    @property
    def needs_reference(self) -> bool:
        """True if :meth:`prepare` needs a frozen reference policy (a KL penalty)."""
        return False

    def chunk_count(self, batch: RolloutBatch) -> int | None:
        """How many chunks :meth:`loss_chunks` yields for ``batch`` (``None``: unknown).

        Distributed training synchronises gradients on the last chunk of an optimiser step only, so it needs
        this number; the default of one chunk per micro-batch suits every method with a single chunk.
        """
        return 1

    @abstractmethod
    def prepare(
        self,
        policy: torch.nn.Module,
        batch: RolloutBatch,
        generator: torch.Generator | Sequence[torch.Generator],
        *,
        on_policy: bool = False,
        reference: torch.nn.Module | None = None,
    ) -> dict[str, Tensor]:
        """Draw the method's randomness and compute old-policy values, at θ_old, without gradients.

        Args:
            policy: the model at θ_old.
            batch: the responses the update will use: the mini-batch (whole groups of G responses), or for a
                method with :attr:`zero_advantage_is_zero_loss` only its rows with A ≠ 0 (``group_size`` is
                then ``None``), so a quantity over the whole mini-batch must not be computed here.
            generator: the only source of randomness: one generator, or one per response (the trainer's
                choice, so that a response's draws do not depend on how the batch is split across processes).
            on_policy: the caller promises exactly one optimiser step on this batch, so old values equal
                the current ones and may be taken from the first forward pass instead of recomputed.
            reference: the frozen reference policy, given when :attr:`needs_reference` is True.

        Returns:
            Tensors whose first dimension is N.
        """

    @abstractmethod
    def loss_chunks(
        self, policy: torch.nn.Module, batch: RolloutBatch, state: Mapping[str, Tensor], *, update: int = 0
    ) -> Iterator[LossChunk]:
        """Yield the loss chunks of ``batch`` (rows of ``state`` aligned with the batch's rows).

        ``update`` counts the optimiser passes over this mini-batch, from 0 to :attr:`updates_per_batch` − 1.
        """


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator that registers a :class:`Method` under ``name``."""

    def decorator(cls: type[Method]) -> type[Method]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"method {name!r} is already registered by {_REGISTRY[name].__module__}")
        if not (isinstance(cls, type) and issubclass(cls, Method)):
            raise TypeError(f"@register_method({name!r}) decorates Method subclasses, got {cls!r}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    for package_name in METHOD_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{package_name}.{info.name}")


def method_names() -> list[str]:
    """All registered method names, sorted."""
    _discover()
    return sorted(_REGISTRY)


def get_method_class(name: str) -> type[Method]:
    """The method class registered as ``name``; an unknown name lists the valid ones."""
    _discover()
    if name not in _REGISTRY:
        raise unknown_name_error("method", name, _REGISTRY, "method.name")
    return _REGISTRY[name]


def build_method(name: str, config: Mapping[str, Any] | None = None) -> Method:
    """Instantiate method ``name`` with its config built from a mapping (unknown keys are errors)."""
    cls = get_method_class(name)
    return cls(from_dict(cls.Config, config, where=f"method ({name})"))


@dataclass
class AccumulationStats:
    """What :func:`accumulate_gradients` did: the normalised loss and summed chunk metrics."""

    loss: float = 0.0
    chunks: int = 0
    metrics: dict[str, float] = field(default_factory=dict)


def active_rows(method: Method, batch: RolloutBatch) -> Tensor:
    """Indices of the responses that can change the loss (all, unless A = 0 rows are provably inert)."""
    if method.zero_advantage_is_zero_loss:
        return (batch.advantages != 0).nonzero(as_tuple=True)[0]
    return torch.arange(batch.num_responses, device=batch.advantages.device)


def accumulate_gradients(
    method: Method,
    policy: torch.nn.Module,
    batch: RolloutBatch,
    state: Mapping[str, Tensor],
    *,
    normaliser: float | None = None,
    micro_batch_size: int | None = None,
    backward: Callable[[Tensor], None] | None = None,
    update: int = 0,
    no_sync: Callable[[], AbstractContextManager[object]] | None = None,
) -> AccumulationStats:
    """Run backward on every loss chunk of ``batch``, micro-batch by micro-batch.

    The loss of the optimiser step is Σ_chunks chunk.loss / normaliser, i.e. the mean over responses of
    the per-response loss (BGPO: L = −E_x (1/G) Σ_i R̂_lb, SPEC §2).

    Args:
        method: the method.
        policy: the current model θ.
        batch: the rows to process (already restricted to :func:`active_rows` if wanted).
        state: :meth:`Method.prepare`'s output for the same rows.
        normaliser: the number of responses of the optimiser step; defaults to this batch's.
        micro_batch_size: responses per forward pass; ``None`` means all at once.
        backward: how to run backward (``accelerator.backward`` under accelerate); default
            ``Tensor.backward``.
        update: which optimiser pass over this mini-batch this is (see :meth:`Method.loss_chunks`).
        no_sync: a context manager factory that suspends gradient synchronisation across processes
            (``lambda: accelerator.no_sync(model)``); every chunk but the last runs inside it, so gradients
            are synchronised once per call, not once per chunk.
    """
    n = batch.num_responses
    for key, value in state.items():
        if value.shape[0] != n:
            raise ValueError(f"state[{key!r}] has {value.shape[0]} rows but the batch has {n} responses")
    if micro_batch_size is not None and micro_batch_size < 1:
        raise ConfigError(f"micro_batch_size must be ≥ 1, got {micro_batch_size}; set train.micro_batch_size")
    normaliser = float(normaliser if normaliser is not None else n)
    if normaliser <= 0:
        raise ValueError(f"normaliser must be positive, got {normaliser}")
    run_backward = backward or (lambda loss: loss.backward())
    step = micro_batch_size or max(n, 1)
    micro_rows = [slice(start, min(start + step, n)) for start in range(0, n, step)]
    total = None
    if no_sync is not None:
        counts = [method.chunk_count(batch.select(rows)) for rows in micro_rows]
        if any(c is None for c in counts):
            raise ValueError(f"method {method.name} does not report chunk_count(); distributed training needs it")
        total = sum(counts)  # type: ignore[arg-type]
    stats = AccumulationStats()
    for rows in micro_rows:
        micro = batch.select(rows)
        micro_state = {k: v[rows] for k, v in state.items()}
        chunks = method.loss_chunks(policy, micro, micro_state, update=update)
        while True:
            last = total is not None and stats.chunks == total - 1
            # DDP decides in the forward pass whether the backward synchronises, so the context covers both:
            # the generator runs the chunk's forward when it is advanced.
            with nullcontext() if no_sync is None or last else no_sync():
                chunk = next(chunks, None)
                if chunk is None:
                    break
                loss = chunk.loss / normaliser
                run_backward(loss)
            stats.loss += float(loss.detach())
            stats.chunks += 1
            for key, value in chunk.metrics.items():
                stats.metrics[key] = stats.metrics.get(key, 0.0) + float(value) / normaliser
    if total is not None and stats.chunks != total:
        raise RuntimeError(f"method {method.name} yielded {stats.chunks} chunks but chunk_count() said {total}")
    return stats


__all__ = [
    "AccumulationStats",
    "LossChunk",
    "Method",
    "MethodConfig",
    "accumulate_gradients",
    "active_rows",
    "build_method",
    "get_method_class",
    "method_names",
    "register_method",
]
