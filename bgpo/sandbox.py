"""A sandbox for untrusted code (model-written programs graded by executing tests).

Each program runs in a fresh temporary directory, under limits on wall time, CPU time, memory (address
space), output, file size, processes and open files, and every process it started is killed afterwards;
the directory is removed. Two backends:

* ``bwrap`` (bubblewrap; ``.ci/run`` installs it): the whole file system read-only, private ``/tmp``,
  ``/var/tmp`` and ``/dev/shm``, the work directory the only writable host path, and new user, PID, network,
  IPC and UTS namespaces: no network, nothing outside the work directory written, and all processes die
  with the namespace's init.
* ``rlimit`` (the documented weaker fallback, used where bubblewrap is missing): the same resource limits
  and clean-up, but no namespaces: the program can read the network and write wherever its user may.

When the evaluator runs as root, each run gets its own unprivileged uid (``uid_base`` + a slot number), so
the process limit is per run, it cannot signal or write anything of the evaluator's, and the clean-up can
kill every process of that uid. As an ordinary user, programs run as that user and the process limit counts
the user's other processes too.

Output (stdout and stderr) goes to files outside the sandbox, capped by the file-size limit (a process that
writes more is killed by SIGXFSZ); only the first ``output_bytes`` are read back.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .config import require, require_choice

BACKENDS = ("auto", "bwrap", "rlimit")
_UNPRIVILEGED_UID_BASE = 1_900_000  # far above any real account's uid


@dataclass(frozen=True)
class SandboxLimits:
    """Per-run limits.

    Attributes:
        wall_time: seconds of wall-clock time before the run is killed.
        cpu_time: seconds of CPU time (RLIMIT_CPU).
        memory_bytes: address-space limit (RLIMIT_AS).
        output_bytes: bytes of stdout and of stderr kept (and the file-size limit, RLIMIT_FSIZE).
        max_processes: processes and threads (RLIMIT_NPROC), per run when running as root.
        max_open_files: open file descriptors (RLIMIT_NOFILE).
    """

    wall_time: float = 10.0
    cpu_time: int = 10
    memory_bytes: int = 1 << 30
    output_bytes: int = 1 << 20
    max_processes: int = 32
    max_open_files: int = 128

    def __post_init__(self) -> None:
        require(self.wall_time > 0, f"wall_time must be > 0, got {self.wall_time}")
        require(self.cpu_time >= 1, f"cpu_time must be ≥ 1 s, got {self.cpu_time}")
        require(self.memory_bytes >= 64 << 20, f"memory_bytes must be ≥ 64 MiB, got {self.memory_bytes}")
        require(self.output_bytes >= 1024, f"output_bytes must be ≥ 1024, got {self.output_bytes}")
        require(self.max_processes >= 4, f"max_processes must be ≥ 4, got {self.max_processes}")


@dataclass
class RunResult:
    """The outcome of one sandboxed run.

    Attributes:
        returncode: the exit status (negative: killed by that signal); None if it could not start.
        stdout: the first ``output_bytes`` of standard output, decoded leniently.
        stderr: likewise for standard error.
        timed_out: the wall-time limit was hit and the run killed.
        wall_time: seconds the run took.
        error: why the sandbox itself failed, if it did.
    """

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    wall_time: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Exited with status 0 within the limits."""
        return self.returncode == 0 and not self.timed_out and self.error is None


def bwrap_available() -> bool:
    """True if bubblewrap is installed and can create namespaces here."""
    exe = shutil.which("bwrap")
    if exe is None:
        return False
    try:
        probe = subprocess.run(
            [exe, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


class Sandbox:
    """Runs untrusted Python programs under limits (see the module docstring).

    Args:
        limits: the per-run limits.
        backend: ``auto`` (bubblewrap where it works, else ``rlimit``), ``bwrap`` or ``rlimit``.
        python: the interpreter for the programs; default the running interpreter's base executable.
        uid_base: first uid of the per-run unprivileged users when running as root.
    """

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        backend: str = "auto",
        python: str | None = None,
        uid_base: int = _UNPRIVILEGED_UID_BASE,
    ) -> None:
        require_choice(backend, BACKENDS, "sandbox.backend")
        self.limits = limits or SandboxLimits()
        if backend == "auto":
            backend = "bwrap" if bwrap_available() else "rlimit"
            if backend == "rlimit":  # said out loud: the fallback has no network or file-system isolation
                warnings.warn(
                    "bubblewrap is unavailable: untrusted code runs with resource limits only (no network or "
                    "file-system isolation); install bubblewrap (apt-get install bubblewrap) for the full sandbox",
                    RuntimeWarning,
                    stacklevel=2,
                )
        elif backend == "bwrap" and not bwrap_available():
            raise RuntimeError("bubblewrap (bwrap) is not installed or cannot create namespaces here; "
                               "install it (apt-get install bubblewrap) or use backend='rlimit'")  # fmt: skip
        self.backend = backend
        self.as_root = os.geteuid() == 0
        self.python = python or _default_python(unprivileged=self.as_root)
        self.uid_base = uid_base
        self._slots = itertools.count()
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------------------------
    def _next_uid(self) -> int | None:
        if not self.as_root:
            return None
        with self._lock:
            return self.uid_base + next(self._slots) % 100_000

    def _limit_prefix(self, uid: int | None) -> list[str]:
        lim = self.limits
        nproc = lim.max_processes
        if uid is None:  # RLIMIT_NPROC counts all of this user's processes: leave room for them
            nproc += _processes_of(os.getuid())
        return [
            "prlimit",
            f"--as={lim.memory_bytes}",
            f"--cpu={lim.cpu_time}",
            f"--fsize={lim.output_bytes}",
            f"--nproc={nproc}",
            f"--nofile={lim.max_open_files}",
            "--core=0",
            "--",
        ]

    def _command(self, workdir: Path, script: str) -> list[str]:
        if self.backend == "rlimit":
            return [self.python, "-I", "-S", script]
        # fmt: off
        return [
            "bwrap",
            "--ro-bind", "/", "/",
            "--dev", "/dev", "--proc", "/proc",
            "--tmpfs", "/tmp", "--tmpfs", "/var/tmp", "--tmpfs", "/dev/shm",
            "--bind", str(workdir), "/tmp/work", "--chdir", "/tmp/work",
            "--unshare-all", "--die-with-parent", "--new-session",
            "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp/work",
            "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
            self.python, "-I", "-S", f"/tmp/work/{script}",
        ]
        # fmt: on

    def run(self, program: str, *, stdin: str = "") -> RunResult:
        """Run one Python program (its source) in the sandbox."""
        uid = self._next_uid()
        host_dir = Path(tempfile.mkdtemp(prefix="bgpo-sandbox-"))
        host_dir.chmod(0o711)  # the run's uid may pass through to work/, not list or read the output files
        workdir = host_dir / "work"
        workdir.mkdir()
        (workdir / "program.py").write_text(program)
        marker = f"BGPO_SANDBOX_RUN={host_dir.name}"
        start = time.perf_counter()
        timed_out = False
        try:
            if uid is not None:
                os.chown(workdir, uid, uid)
                os.chown(workdir / "program.py", uid, uid)
            script = str(workdir / "program.py") if self.backend == "rlimit" else "program.py"
            # setpriv drops to the run's uid after the fork, so Popen needs no user/group and can use vfork:
            # forking a training process of a few GB (page tables) would cost more than the run itself.
            drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"] if uid is not None else []
            cmd = self._limit_prefix(uid) + drop + self._command(workdir, script)
            env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "PYTHONDONTWRITEBYTECODE": "1",
                   marker.split("=")[0]: marker.split("=")[1]}  # fmt: skip
            with (
                open(host_dir / "stdout", "wb") as out,
                open(host_dir / "stderr", "wb") as err,
                open(host_dir / "stdin", "w+") as inp,
            ):
                inp.write(stdin)
                inp.seek(0)
                try:
                    proc = subprocess.Popen(
                        cmd,
                        stdin=inp,
                        stdout=out,
                        stderr=err,
                        cwd=workdir,
                        env=env,
                        start_new_session=True,
                    )
                except OSError as exc:
                    return RunResult(None, "", "", False, 0.0, error=f"could not start the sandbox: {exc}")
                # A timer kills the run at the wall-time limit; a blocking wait() returns as soon as it ends
                # (wait(timeout=...) polls with sleeps, which would cost tens of ms per run).
                expired = threading.Event()

                def expire(pid: int = proc.pid) -> None:
                    expired.set()
                    _kill_group(pid)

                timer = threading.Timer(self.limits.wall_time, expire)
                timer.start()
                try:
                    returncode = proc.wait()
                finally:
                    timer.cancel()
                timed_out = expired.is_set()
                _kill_group(proc.pid)  # daemons left in its process group
            _kill_leftovers(uid, marker)
            elapsed = time.perf_counter() - start
            return RunResult(
                returncode=returncode,
                stdout=_read_head(host_dir / "stdout", self.limits.output_bytes),
                stderr=_read_head(host_dir / "stderr", self.limits.output_bytes),
                timed_out=timed_out,
                wall_time=elapsed,
            )
        finally:
            _kill_leftovers(uid, marker)
            shutil.rmtree(host_dir, ignore_errors=True)

    def run_many(self, programs: Sequence[str], workers: int | None = None) -> list[RunResult]:
        """Run programs in parallel (threads waiting on subprocesses), results in input order.

        The default is four workers per core: a short program's run is mostly waiting on process and namespace
        start-up, so more runs in flight than cores is faster (measured on 2 cores: 64 programs in 2.6 s with 2
        workers, 1.0 s with 8).
        """
        workers = workers or max(1, min(len(programs), 4 * (os.cpu_count() or 1)))
        if workers == 1 or len(programs) <= 1:
            return [self.run(p) for p in programs]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self.run, programs))


def _world_executable(path: str) -> bool:
    """True if a user with no special rights can execute ``path`` (every parent traversable)."""
    real = Path(os.path.realpath(path))
    try:
        if not real.is_file() or real.stat().st_mode & 0o005 != 0o005:
            return False
        return all(parent.stat().st_mode & 0o001 for parent in real.parents)
    except OSError:
        return False


def _default_python(unprivileged: bool) -> str:
    """The running interpreter, or (for runs under an unprivileged uid) the first one that uid can execute."""
    candidates = [getattr(sys, "_base_executable", None) or sys.executable, sys.executable]
    if not unprivileged:
        return candidates[0]
    candidates += [shutil.which("python3") or "", "/usr/bin/python3", "/usr/local/bin/python3"]
    for candidate in candidates:
        if candidate and _world_executable(candidate):
            return candidate
    raise RuntimeError(
        "no Python interpreter is executable by an unprivileged user (the running one lives under a private "
        "directory); install one system-wide (apt-get install python3) or pass Sandbox(python=...)"
    )


def _read_head(path: Path, limit: int) -> str:
    with open(path, "rb") as f:
        return f.read(limit).decode("utf-8", errors="replace")


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _processes_of(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += 1
            except OSError:
                continue
    return count


def _kill_leftovers(uid: int | None, marker: str) -> None:
    """Kill every process of the run's private uid, or (no private uid) every process with its marker.

    Processes that left the process group (``setsid``, double fork) are found here; under bubblewrap they
    already died with the PID namespace.
    """
    needle = marker.encode()
    for _ in range(3):  # a fork in progress may add a process between scans
        found = False
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                if uid is not None:
                    mine = entry.stat().st_uid == uid
                else:
                    with open(f"/proc/{pid}/environ", "rb") as f:
                        mine = needle in f.read()
                if mine:
                    with open(f"/proc/{pid}/stat", "rb") as f:
                        state = f.read().rsplit(b")", 1)[1].split()[0]
                    mine = state not in (b"Z", b"X")  # already dead, waiting to be reaped
            except (OSError, IndexError):
                continue
            if mine and pid != os.getpid():
                found = True
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        if not found:
            return
        time.sleep(0.05)
