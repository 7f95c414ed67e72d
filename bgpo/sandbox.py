"""A sandbox for untrusted code (model-written programs graded by executing tests).

Each program runs in a fresh temporary directory, under limits on wall time, CPU time, memory (address
space), output, file size, processes and open files, and every process it started is killed afterwards;
the directory is removed. Two backends:

* ``bwrap`` (bubblewrap; ``.ci/run`` installs it), the default: new user, PID, network, IPC, UTS and cgroup
  namespaces; only the system directories (``/usr``, ``/etc``, the interpreter's prefix) are mounted, read-only,
  so the program sees no network, no home directory, no data set and no checkout; its only writable places are
  a private ``/tmp`` (holding the work directory) and ``/dev/shm``, tmpfs mounts whose sizes add up to
  ``disk_bytes``; all its processes die with the namespace's init.
* ``rlimit-unsafe`` (only when asked for by that name): the same resource limits and clean-up, no namespaces.
  The program can reach the network, read every file its user may read (data sets included) and write
  wherever that user may (no total size cap); as an ordinary user it runs as that user, so it can signal or
  ptrace the grader, and a ``setsid`` daemon that scrubs its environment escapes the clean-up. ``auto`` never
  falls back to it: where bubblewrap is missing, it refuses and says how to install it or opt in.

When the evaluator runs as root, each run gets its own unprivileged uid from a range that belongs to this
process alone (a slot of ``/run/bgpo-sandbox-uids`` held with ``flock``; two live processes on one machine
never hold the same slot), so the process limit is per run, the run cannot signal or write anything of the
evaluator's or of another run's, and the clean-up (which kills every process of that uid) can only reach
this run's processes. As root with a writable memory cgroup (v1 or v2), each run also gets its own cgroup
whose limit, ``memory_bytes + disk_bytes``, covers all its processes, its tmpfs pages and its shared memory;
elsewhere memory is bounded per process (``memory_bytes`` of address space each, ``max_processes`` of them)
plus the tmpfs sizes.

Output (stdout and stderr) goes to files outside the sandbox, capped by the file-size limit (a process that
writes more is killed by SIGXFSZ); only the first ``output_bytes`` are read back. With ``verdict=True`` the
program also gets a pipe (its number is the program's first argument) whose contents come back as
``RunResult.verdict``: the code graders' trusted harness (``bgpo/sandbox_harness.py``) reports on it, in a
process the program cannot reach.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .config import ConfigError, require, require_choice
from .errors import RunError

BACKENDS = ("auto", "bwrap", "rlimit-unsafe")
# Far above any real account's uid, and above 1,900,000-1,999,999, where graders of earlier versions (one
# shared counter per process) run their programs: one of those on the same machine cannot take these uids.
_UNPRIVILEGED_UID_BASE = 2_000_000
_UIDS_PER_SLOT = 1024  # uids of one process's range: more runs than this in flight wait for a free one
_SLOTS = 2048  # ranges on one machine: uids up to _UNPRIVILEGED_UID_BASE + 2048 * 1024 < 2**32
_SLOT_DIRS = ("/run/bgpo-sandbox-uids", "/tmp/.bgpo-sandbox-uids")  # the first writable one, the same for all
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
_HARNESS = Path(__file__).with_name("sandbox_harness.py")


class SandboxUnavailable(RunError):
    """The requested isolation cannot be had here (bubblewrap missing or unable to create namespaces)."""


@dataclass(frozen=True)
class SandboxLimits:
    """Per-run limits.

    Attributes:
        wall_time: seconds of wall-clock time before the run is killed.
        cpu_time: seconds of CPU time (RLIMIT_CPU).
        memory_bytes: address-space limit per process (RLIMIT_AS); with a memory cgroup, the run's total is
            ``memory_bytes + disk_bytes``.
        output_bytes: bytes of stdout and of stderr kept (and the file-size limit, RLIMIT_FSIZE).
        max_processes: processes and threads (RLIMIT_NPROC), per run when running as root.
        max_open_files: open file descriptors (RLIMIT_NOFILE).
        disk_bytes: total size of the writable tmpfs mounts under bubblewrap (``/tmp`` with the work directory,
            ``/dev/shm``): a program that writes more gets ENOSPC.
    """

    wall_time: float = 10.0
    cpu_time: int = 10
    memory_bytes: int = 1 << 30
    output_bytes: int = 1 << 20
    max_processes: int = 32
    max_open_files: int = 128
    disk_bytes: int = 64 << 20

    def __post_init__(self) -> None:
        require(self.wall_time > 0, f"wall_time must be > 0, got {self.wall_time}")
        require(self.cpu_time >= 1, f"cpu_time must be ≥ 1 s, got {self.cpu_time}")
        require(self.memory_bytes >= 64 << 20, f"memory_bytes must be ≥ 64 MiB, got {self.memory_bytes}")
        require(self.output_bytes >= 1024, f"output_bytes must be ≥ 1024, got {self.output_bytes}")
        require(self.max_processes >= 4, f"max_processes must be ≥ 4, got {self.max_processes}")
        require(self.disk_bytes >= 1 << 20, f"disk_bytes must be ≥ 1 MiB, got {self.disk_bytes}")


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
        verdict: with ``run(..., verdict=True)``, what the program wrote on its verdict pipe (None if nothing).
    """

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    wall_time: float
    error: str | None = None
    verdict: str | None = None

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


def resolve_backend(backend: str) -> str:
    """The backend ``backend`` stands for here: ``bwrap`` or ``rlimit-unsafe``.

    ``auto`` is bubblewrap or an error: it never falls back to the weaker backend silently.
    """
    if backend == "rlimit":
        raise ConfigError("sandbox.backend 'rlimit' is now called 'rlimit-unsafe' (it does not isolate the program); "
                          "use 'auto' or 'bwrap', or opt in with 'rlimit-unsafe'")  # fmt: skip
    require_choice(backend, BACKENDS, "sandbox.backend")
    if backend == "rlimit-unsafe":
        return backend
    if not bwrap_available():
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed or cannot create namespaces here, so model-written code cannot "
            "be isolated; install it (apt-get install bubblewrap), or opt in to the weaker backend by name: "
            "backend='rlimit-unsafe' (a task option, e.g. data.task_options.<task>.backend: rlimit-unsafe, or "
            '--task-options \'{"<task>": {"backend": "rlimit-unsafe"}}\'); it leaves the network, the '
            "user's files and (as non-root) the grader itself open to the program"
        )
    return "bwrap"


class Sandbox:
    """Runs untrusted Python programs under limits (see the module docstring).

    Args:
        limits: the per-run limits.
        backend: ``auto`` (bubblewrap, else an error), ``bwrap`` or ``rlimit-unsafe``.
        python: the interpreter for the programs; default the running interpreter's base executable.
        uid_base: first uid of the per-run unprivileged users when running as root; this process takes a
            range of ``_UIDS_PER_SLOT`` of them that no other live process holds.
    """

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        backend: str = "auto",
        python: str | None = None,
        uid_base: int = _UNPRIVILEGED_UID_BASE,
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.backend = resolve_backend(backend)
        self.as_root = os.geteuid() == 0
        self.python = python or _default_python(unprivileged=self.as_root)
        self.uid_base = uid_base
        self._uids: _UidRange | None = None
        self._cgroup: _MemoryCgroups | None = None
        self._lock = threading.Lock()
        self._mounts = _system_mounts(self.python) if self.backend == "bwrap" else []
        self._bytecode: dict[str, Path] = {}
        self._cache_dir: Path | None = None

    # ----------------------------------------------------------------------------------------------
    @property
    def uid_range(self) -> range | None:
        """The uids this process's runs use (root only; taken on first use)."""
        uids = self._uid_pool()
        return None if uids is None else uids.uids

    @property
    def memory_cgroup(self) -> bool:
        """Whether runs get a memory cgroup (root with a writable memory controller; decided on first use)."""
        self._uid_pool()
        return self._cgroup is not None

    def _uid_pool(self) -> _UidRange | None:
        if not self.as_root:
            return None
        with self._lock:
            # A forked copy of this object (a DataLoader worker, multiprocessing) takes a range of its own.
            if self._uids is None or self._uids.pid != os.getpid():
                self._uids = _UidRange(self.uid_base)
                self._cgroup = _MemoryCgroups.create(f"bgpo-sandbox-{os.getpid()}-{self._uids.slot}")
            return self._uids

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

    def _command(self, program: Path, args: list[str]) -> list[str]:
        if self.backend == "rlimit-unsafe":
            return [self.python, "-I", "-S", "-B", str(program), *args]
        inside = f"/tmp/work/program{program.suffix}"
        shm = max(self.limits.disk_bytes // 8, 64 << 10)
        # fmt: off
        return [
            "bwrap",
            *self._mounts,
            "--dev", "/dev", "--proc", "/proc",
            "--size", str(self.limits.disk_bytes - shm), "--tmpfs", "/tmp",
            "--size", str(shm), "--tmpfs", "/dev/shm",
            "--dir", "/tmp/work",
            "--ro-bind", str(program), inside,
            # The new root and /dev are tmpfs mounts of bubblewrap's: read-only, so the two capped ones above
            # are the only places the program can write.
            "--remount-ro", "/dev", "--remount-ro", "/",
            "--chdir", "/tmp/work",
            "--unshare-all", "--die-with-parent", "--new-session",
            "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp/work",
            self.python, "-I", "-S", "-B", inside, *args,
        ]
        # fmt: on

    def run(self, program: str, *, stdin: str | bytes = "", verdict: bool = False, compiled: bool = False) -> RunResult:
        """Run one Python program (its source) in the sandbox.

        Args:
            program: the source.
            stdin: its standard input.
            verdict: give it a pipe (its number is ``sys.argv[1]``) whose contents come back as
                ``RunResult.verdict``.
            compiled: run bytecode compiled once per sandbox (by its interpreter, outside the sandbox) instead
                of the source: for a trusted program run many times, such as the graders' harness, whose
                compilation would otherwise cost about a quarter of each run.
        """
        uids = self._uid_pool()
        bytecode = self._compiled(program) if compiled else None
        uid = uids.acquire() if uids is not None else None
        try:
            return self._run(program, bytecode, stdin, verdict, uid)
        finally:
            if uids is not None and uid is not None:
                uids.release(uid)

    def _compiled(self, program: str) -> Path:
        """``program`` compiled by the sandbox's interpreter, cached in a private folder of this sandbox."""
        key = hashlib.sha256(program.encode()).hexdigest()[:20]
        with self._lock:
            if key not in self._bytecode:
                if self._cache_dir is None:
                    self._cache_dir = Path(tempfile.mkdtemp(prefix="bgpo-bytecode-"))
                    self._cache_dir.chmod(0o711)  # the runs' uids may read a file by its name, not list
                    weakref.finalize(self, shutil.rmtree, self._cache_dir, True)
                source, target = self._cache_dir / f"{key}.py", self._cache_dir / f"{key}.pyc"
                source.write_text(program)
                compile_it = "import py_compile, sys; py_compile.compile(sys.argv[1], sys.argv[2], doraise=True)"
                done = subprocess.run([self.python, "-I", "-S", "-c", compile_it, str(source), str(target)],
                                      capture_output=True, text=True)  # fmt: skip
                if done.returncode != 0:
                    raise RuntimeError(f"{self.python} could not compile the program: {done.stderr.strip()}")
                target.chmod(0o644)
                self._bytecode[key] = target
            return self._bytecode[key]

    def _run(
        self, program: str, bytecode: Path | None, stdin: str | bytes, verdict: bool, uid: int | None
    ) -> RunResult:
        host_dir = Path(tempfile.mkdtemp(prefix="bgpo-sandbox-"))
        host_dir.chmod(0o711)  # the run's uid may pass through, not list or read the grader's files
        marker = f"BGPO_SANDBOX_RUN={host_dir.name}"
        cgroup = self._cgroup.enter(uid, self.limits) if self._cgroup is not None and uid is not None else None
        read_end = write_end = None
        cleaned = False
        start = time.perf_counter()
        try:
            if self.backend == "bwrap":  # the program file is mounted read-only into the sandbox's tmpfs
                if bytecode is None:
                    _write_private(host_dir / "program.py", program, mode=0o644)
                program_file = bytecode or host_dir / "program.py"
            else:
                workdir = host_dir / "work"
                workdir.mkdir()
                program_file = bytecode or workdir / "program.py"
                if bytecode is None:
                    program_file.write_text(program)
                if uid is not None:
                    os.chown(workdir, uid, uid)
                    if bytecode is None:
                        os.chown(program_file, uid, uid)
            args: list[str] = []
            if verdict:
                read_end, write_end = os.pipe()
                args.append(str(write_end))
            # setpriv drops to the run's uid after the fork, so Popen needs no user/group and can use vfork:
            # forking a training process of a few GB (page tables) would cost more than the run itself.
            drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"] if uid is not None else []
            cmd = self._limit_prefix(uid) + drop + self._command(program_file, args)
            if cgroup is not None:  # join the run's cgroup before anything of the program exists
                cmd = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cgroup / "cgroup.procs"), *cmd]
            cwd = host_dir if self.backend == "bwrap" else host_dir / "work"
            env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "PYTHONDONTWRITEBYTECODE": "1",
                   marker.split("=")[0]: marker.split("=")[1]}  # fmt: skip
            # Root-only files: under the rlimit backend the run's uid could otherwise open them by name.
            _write_private(host_dir / "stdin", stdin)
            with (
                _open_private(host_dir / "stdout") as out,
                _open_private(host_dir / "stderr") as err,
                open(host_dir / "stdin", "rb") as inp,
            ):
                try:
                    proc = subprocess.Popen(
                        cmd,
                        stdin=inp,
                        stdout=out,
                        stderr=err,
                        cwd=cwd,
                        env=env,
                        start_new_session=True,
                        pass_fds=(write_end,) if write_end is not None else (),
                    )
                except OSError as exc:
                    return RunResult(None, "", "", False, 0.0, error=f"could not start the sandbox: {exc}")
                if write_end is not None:
                    os.close(write_end)
                    write_end = None
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
            cleaned = True
            elapsed = time.perf_counter() - start
            return RunResult(
                returncode=returncode,
                stdout=_read_head(host_dir / "stdout", self.limits.output_bytes),
                stderr=_read_head(host_dir / "stderr", self.limits.output_bytes),
                timed_out=timed_out,
                wall_time=elapsed,
                verdict=_read_pipe(read_end) if read_end is not None else None,
            )
        finally:
            if not cleaned:  # an exception on the way: the program's processes go all the same
                _kill_leftovers(uid, marker)
            for fd in (read_end, write_end):
                if fd is not None:
                    os.close(fd)
            if cgroup is not None:
                _remove_cgroup(cgroup)
            shutil.rmtree(host_dir, ignore_errors=True)

    def run_many(
        self,
        programs: Sequence[str],
        workers: int | None = None,
        *,
        stdins: Sequence[str | bytes] | None = None,
        verdict: bool = False,
        compiled: bool = False,
    ) -> list[RunResult]:
        """Run programs in parallel (threads waiting on subprocesses), results in input order.

        The default is four workers per core: a short program's run is mostly waiting on process and namespace
        start-up, so more runs in flight than cores is faster (measured on 2 cores: 64 programs in 2.6 s with 2
        workers, 1.0 s with 8). ``stdins`` gives each program its standard input; ``verdict`` and ``compiled`` as in
        :meth:`run`.
        """
        stdins = list(stdins) if stdins is not None else [""] * len(programs)
        require(len(stdins) == len(programs), f"run_many: {len(programs)} programs but {len(stdins)} stdins")

        def one(i: int) -> RunResult:
            return self.run(programs[i], stdin=stdins[i], verdict=verdict, compiled=compiled)

        workers = workers or max(1, min(len(programs), 4 * (os.cpu_count() or 1)))
        if workers == 1 or len(programs) <= 1:
            return [one(i) for i in range(len(programs))]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, range(len(programs))))


def harness_source() -> str:
    """The source of the trusted test harness (``bgpo/sandbox_harness.py``) that the code graders run."""
    return _HARNESS.read_text()


# -------------------------------------------------------------------------------------------- uids
class _UidRange:
    """A range of uids that belongs to this process alone among the live processes of this machine.

    Slot ``k`` (uids ``base + k * _UIDS_PER_SLOT`` onwards) is this process's while it holds an exclusive
    ``flock`` on ``<slot dir>/slot-k``: the lock goes with the open file, so it ends when the process does (even
    killed), and ``flock`` (unlike ``fcntl`` locks) also keeps two Sandbox objects of one process apart. A slot
    where a process of its uids still runs (left over from a killed grader, or a program that is not ours) is
    skipped. Within the range, uids are handed out least recently used first, never two runs at once.
    """

    def __init__(self, base: int) -> None:
        self.pid = os.getpid()
        directory = _slot_dir()
        busy = _uids_in_use()
        for slot in range(_SLOTS):
            fd = os.open(os.path.join(directory, f"slot-{slot}"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            first = base + slot * _UIDS_PER_SLOT
            if any(first <= uid < first + _UIDS_PER_SLOT for uid in busy):
                os.close(fd)
                continue
            self.slot, self.uids, self._fd = slot, range(first, first + _UIDS_PER_SLOT), fd
            break
        else:
            raise SandboxUnavailable(f"all {_SLOTS} uid ranges of {directory} are taken by live processes")
        self._free = deque(self.uids)
        self._available = threading.Condition()
        weakref.finalize(self, os.close, fd)

    def acquire(self) -> int:
        """A uid no other run of this machine uses now (waits if all of this range's are in use)."""
        with self._available:
            while not self._free:
                self._available.wait()
            return self._free.popleft()

    def release(self, uid: int) -> None:
        """Give back a uid whose processes are all dead."""
        with self._available:
            self._free.append(uid)
            self._available.notify()


def _slot_dir() -> str:
    for directory in _SLOT_DIRS:
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            info = os.stat(directory)
        except OSError:
            continue
        if info.st_uid == 0 and not info.st_mode & 0o022:
            return directory
    raise SandboxUnavailable(f"none of {', '.join(_SLOT_DIRS)} is a root-owned directory root can write; "
                             "create one (mkdir -m 700 /run/bgpo-sandbox-uids)")  # fmt: skip


def _uids_in_use() -> set[int]:
    uids = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                uids.add(entry.stat().st_uid)
    return uids


# -------------------------------------------------------------------------------------- memory cgroups
class _MemoryCgroups:
    """A cgroup of this Sandbox's (under this process's own) holding one child cgroup per run."""

    def __init__(self, root: Path, limit_files: tuple[str, ...]) -> None:
        self.root, self.limit_files = root, limit_files
        weakref.finalize(self, _remove_cgroup, root)

    @classmethod
    def create(cls, name: str) -> _MemoryCgroups | None:
        """The cgroup ``name`` next to this process's memory cgroup; None where none can be made."""
        try:
            lines = Path("/proc/self/cgroup").read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            parts = line.split(":", 2)
            if len(parts) != 3:
                continue
            _, controllers, path = parts
            if "memory" in controllers.split(","):  # cgroup v1
                base, files = Path("/sys/fs/cgroup/memory"), ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes")
            elif controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").is_file():  # cgroup v2
                base, files = Path("/sys/fs/cgroup"), ("memory.max", "memory.swap.max")
            else:
                continue
            root = base / path.lstrip("/") / name
            try:
                root.mkdir(exist_ok=True)
                probe = root / "probe"
                probe.mkdir(exist_ok=True)
                ok = (probe / files[0]).is_file()
                probe.rmdir()
            except OSError:
                continue
            if ok:
                return cls(root, files)
            _remove_cgroup(root)
        return None

    def enter(self, uid: int, limits: SandboxLimits) -> Path | None:
        """A fresh cgroup for the run of ``uid``, its memory limit set; None if that fails."""
        path = self.root / f"run-{uid}"
        try:
            path.mkdir(exist_ok=True)
            total = limits.memory_bytes + limits.disk_bytes
            (path / self.limit_files[0]).write_text(str(total))
        except OSError:
            _remove_cgroup(path)
            return None
        with contextlib.suppress(OSError):  # no swap accounting here: nothing to limit
            (path / self.limit_files[1]).write_text(str(total) if "memsw" in self.limit_files[1] else "0")
        return path


def _remove_cgroup(path: Path) -> None:
    for _ in range(20):  # the last processes may still be exiting
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                return
            time.sleep(0.005)


# ------------------------------------------------------------------------------------------- helpers
def _system_mounts(python: str) -> list[str]:
    """bwrap arguments that mount the system directories read-only (symlinks as symlinks), and the
    interpreter's installation if it lives elsewhere."""
    args: list[str] = []
    for path in _SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    prefix = Path(os.path.realpath(python)).parent.parent
    if not any(prefix == Path(d) or Path(d) in prefix.parents for d in _SYSTEM_DIRS if os.path.isdir(d)):
        args += ["--ro-bind", str(prefix), str(prefix)]
    return args


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


def _write_private(path: Path, data: str | bytes, mode: int = 0o600) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    with open(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def _open_private(path: Path):
    return open(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), "wb")


def _read_head(path: Path, limit: int) -> str:
    with open(path, "rb") as f:
        return f.read(limit).decode("utf-8", errors="replace")


def _read_pipe(fd: int, limit: int = 1 << 16) -> str | None:
    """What is in the pipe now, up to ``limit`` bytes (its writers are dead); None if nothing."""
    os.set_blocking(fd, False)
    chunks, size = [], 0
    while size < limit:
        try:
            chunk = os.read(fd, limit - size)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace") if chunks else None


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
    already died with the PID namespace. The uid is this run's alone (see ``_UidRange``), so nothing of
    another run or another grader is touched.
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
