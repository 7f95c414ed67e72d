"""The sandbox against hostile programs: each is contained, the evaluator survives, nothing is left behind."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import time

import pytest

from bgpo.sandbox import Sandbox, SandboxLimits, bwrap_available

LIMITS = SandboxLimits(wall_time=5.0, cpu_time=4, memory_bytes=512 << 20, output_bytes=64 << 10, max_processes=24)
BACKENDS = [
    "rlimit",
    pytest.param("bwrap", marks=pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not installed")),
]
OUTSIDE = os.path.join(tempfile.gettempdir(), "escape-marker-of-the-sandbox-test")
HOSTILE = {
    "infinite_loop": "while True:\n    pass\n",
    "fork_bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    "memory_hog": "x = []\nwhile True:\n    x.append(bytearray(50 << 20))\n",
    "huge_output": "while True:\n    print('x' * 10000)\n",
    "network": "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)\nprint('connected')\n",
    "write_outside": f"open({OUTSIDE!r}, 'w').write('escaped')\nprint('wrote')\n",
    "write_root": "open('/escaped-marker', 'w').write('x')\nprint('wrote')\n",
    "kill_parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos.killpg(0, signal.SIGKILL)\n",
    "kill_everything": "import os, signal\nos.kill(-1, signal.SIGKILL)\n",
    "sys_exit": "import sys\nsys.exit(3)\n",
    "deep_recursion": "import sys\nsys.setrecursionlimit(10**7)\ndef f(n):\n    return f(n + 1)\nf(0)\n",
    "well_behaved": "print(sum(range(10)))\n",
    "daemon": (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(60)\n"
        "        os._exit(0)\n    os._exit(0)\nprint('parent done')\n"
    ),
}


def _leftover_dirs():
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "bgpo-sandbox-*")))


@pytest.fixture
def private_tmp(monkeypatch):
    """Work directories under a folder of this test's own, so other sandboxes on the machine do not show up.

    Not pytest's ``tmp_path``: its parents are private to us, and the sandboxed program runs as another user.
    """
    root = tempfile.mkdtemp(prefix="bgpo-test-")
    os.chmod(root, 0o711)  # the sandbox's user may pass through, not list
    monkeypatch.setattr(tempfile, "tempdir", root)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _processes_of_uids(uids):
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid in uids:
                    with open(f"/proc/{entry.name}/stat", "rb") as f:
                        if f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X"):
                            found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_well_behaved_program_runs(backend):
    result = Sandbox(LIMITS, backend=backend).run("import math\nprint(math.factorial(5))\n")
    assert result.ok and result.stdout == "120\n"


@pytest.mark.parametrize("backend", BACKENDS)
def test_hostile_programs_are_contained(backend, private_tmp):
    if os.path.exists(OUTSIDE):
        os.remove(OUTSIDE)
    before = _leftover_dirs()
    sandbox = Sandbox(LIMITS, backend=backend)
    names = list(HOSTILE)
    start = time.perf_counter()
    results = dict(zip(names, sandbox.run_many([HOSTILE[n] for n in names], workers=4), strict=True))
    elapsed = time.perf_counter() - start
    # The evaluator survived (we are here) and every run ended within its limits.
    assert elapsed < 3 * LIMITS.wall_time + 10
    for name, result in results.items():
        assert result.wall_time < LIMITS.wall_time + 2, name
    # The wall-time limit, or the CPU limit first (SIGXCPU/SIGKILL; bubblewrap reports a signal as 128 + it).
    assert results["infinite_loop"].timed_out or results["infinite_loop"].returncode in (-9, -24, 137, 152)
    assert not results["fork_bomb"].ok
    assert not results["memory_hog"].ok and "MemoryError" in results["memory_hog"].stderr
    huge = results["huge_output"]
    assert not huge.ok and len(huge.stdout) <= LIMITS.output_bytes
    assert results["sys_exit"].returncode == 3
    assert not results["deep_recursion"].ok
    assert not results["write_root"].ok and not os.path.exists("/escaped-marker")
    assert results["kill_parent"].returncode != 0
    # kill(-1) reaches only what the run's own user may signal: the evaluator and the other runs go on.
    assert results["well_behaved"].ok and results["well_behaved"].stdout == "45\n"
    assert results["daemon"].ok and "parent done" in results["daemon"].stdout
    if backend == "bwrap":
        assert not results["network"].ok and "connected" not in results["network"].stdout
        assert not os.path.exists(OUTSIDE), "a write outside the work directory reached the host"
    # Nothing left behind: no process of the sandbox uids, no temporary directory.
    if sandbox.as_root:
        uids = set(range(sandbox.uid_base, sandbox.uid_base + 64))
        assert _processes_of_uids(uids) == []
    assert _leftover_dirs() == before
    if os.path.exists(OUTSIDE):
        os.remove(OUTSIDE)


@pytest.mark.parametrize("backend", BACKENDS)
def test_work_directory_is_writable_and_removed(backend, private_tmp):
    sandbox = Sandbox(LIMITS, backend=backend)
    before = _leftover_dirs()
    result = sandbox.run("open('scratch.txt', 'w').write('ok')\nprint(open('scratch.txt').read())\n")
    assert result.ok and result.stdout == "ok\n"
    assert _leftover_dirs() == before


def test_unknown_backend_lists_the_valid_ones():
    from bgpo.config import ConfigError

    with pytest.raises(ConfigError, match=r"sandbox\.backend must be one of 'auto', 'bwrap', 'rlimit'"):
        Sandbox(backend="docker")
