"""Memory instruments: bytes saved for backward, peak RSS, and the CUDA peak.

:func:`track_memory` is a context manager. Inside it every tensor that autograd saves for backward is
counted (``torch.autograd.graph.saved_tensors_hooks``) until its graph is freed; the report gives the peak
of the live total. Tensors are counted once per storage (a tensor saved by several nodes, or views of
one buffer, cost their storage once), and storages passed in ``exclude`` (model parameters, usually) are
ignored, so the figure is the activation memory that an objective keeps alive.

The peak RSS is the process's high-water mark (``VmHWM``), reset on entry where Linux allows it
(``/proc/self/clear_refs``); where it cannot be reset the report says so in ``rss_scope``. The CUDA peak is
``torch.cuda.max_memory_allocated`` after a reset, where a GPU is present.
"""

from __future__ import annotations

import resource
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class MemoryReport:
    """Peaks measured by :func:`track_memory` (filled in when the context exits).

    Attributes:
        peak_saved_bytes: the most bytes held for backward at any one time.
        peak_rss_bytes: the process's peak resident set size.
        rss_scope: ``"context"`` if the RSS peak was reset on entry, ``"process"`` if it covers the
            whole process lifetime (the reset was not possible).
        cuda_peak_bytes: peak CUDA memory allocated inside the context, or ``None`` without a GPU.
    """

    peak_saved_bytes: int = 0
    peak_rss_bytes: int = 0
    rss_scope: str = "context"
    cuda_peak_bytes: int | None = None


class _SavedCounter:
    def __init__(self, excluded: set[int]) -> None:
        self.excluded = excluded
        self.live: dict[int, list[int]] = {}  # storage pointer -> [references, bytes]
        self.current = 0
        self.peak = 0
        self.lock = threading.Lock()

    def add(self, key: int, nbytes: int) -> None:
        with self.lock:
            entry = self.live.get(key)
            if entry is None:
                self.live[key] = [1, nbytes]
                self.current += nbytes
                self.peak = max(self.peak, self.current)
            else:
                entry[0] += 1

    def remove(self, key: int) -> None:
        with self.lock:
            entry = self.live[key]
            entry[0] -= 1
            if entry[0] == 0:
                self.current -= entry[1]
                del self.live[key]


def _storage(tensor: Tensor) -> torch.UntypedStorage | None:
    """The storage behind ``tensor`` (a DTensor's local shard under FSDP2), or None if it has no valid one.

    FSDP2 frees a gathered parameter's memory by resizing its storage to zero; such a storage has no data
    pointer and holds nothing, so it is not counted.
    """
    local = tensor.to_local() if hasattr(tensor, "to_local") else tensor
    try:
        storage = local.untyped_storage()
        storage.data_ptr()
    except RuntimeError:
        return None
    return storage


class _Packed:
    """What autograd stores instead of the tensor; its deletion marks the tensor as released."""

    __slots__ = ("counter", "key", "tensor")

    def __init__(self, tensor: Tensor, counter: _SavedCounter) -> None:
        self.tensor = tensor
        self.counter = counter
        self.key = -1
        storage = _storage(tensor)
        key = storage.data_ptr() if storage is not None else 0
        if key and key not in counter.excluded:
            self.key = key
            counter.add(key, storage.nbytes())

    def __del__(self) -> None:
        if self.key != -1:
            self.counter.remove(self.key)


def _read_hwm_bytes() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Start a new peak-RSS window (Linux ``clear_refs``); False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # "5" resets the peak RSS counter (Documentation/filesystems/proc.rst)
        return True
    except OSError:
        return False


def _lifetime_peak_rss() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # kilobytes on Linux, bytes on macOS


def read_peak_rss(window: bool) -> int:
    """The peak RSS since :func:`reset_peak_rss` (``window`` = what it returned), else the process's lifetime peak."""
    hwm = _read_hwm_bytes() if window else None
    return hwm if hwm is not None else _lifetime_peak_rss()


@contextmanager
def track_memory(
    exclude: Iterable[Tensor] = (), cuda_device: torch.device | int | None = None, *, reset_peaks: bool = True
) -> Iterator[MemoryReport]:
    """Measure peak saved-for-backward bytes, peak RSS and the CUDA peak of the enclosed code.

    Args:
        exclude: tensors whose storages are not counted (pass ``model.parameters()``).
        cuda_device: the CUDA device to watch; default the current one where CUDA is available.
        reset_peaks: start the RSS and CUDA peaks here (the default); False leaves a window the caller opened
            over more than the enclosed code alone (``bench.memory_point``: the whole step) untouched, and the
            report's RSS and CUDA peaks are then those of that window so far.

    Yields:
        A :class:`MemoryReport`, filled in on exit.
    """
    report = MemoryReport()
    counter = _SavedCounter({storage.data_ptr() for t in exclude if (storage := _storage(t)) is not None})
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.synchronize(cuda_device)
        if reset_peaks:
            torch.cuda.reset_peak_memory_stats(cuda_device)
    # Without a reset of its own, the caller's window (or, where none could be opened, the process) is read.
    window = reset_peak_rss() if reset_peaks else True
    report.rss_scope = "window" if not reset_peaks else "context" if window else "process"
    try:
        with torch.autograd.graph.saved_tensors_hooks(lambda t: _Packed(t, counter), lambda p: p.tensor):
            yield report
    finally:
        report.peak_saved_bytes = counter.peak
        report.peak_rss_bytes = read_peak_rss(window)
        if use_cuda:
            torch.cuda.synchronize(cuda_device)
            report.cuda_peak_bytes = int(torch.cuda.max_memory_allocated(cuda_device))
