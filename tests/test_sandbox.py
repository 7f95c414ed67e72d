"""The sandbox against hostile programs: each is contained, the evaluator survives, nothing is left behind.

Two levels: raw programs against the sandbox's limits and isolation, and programs that try to cheat the code
graders (forge the verdict, fool the comparisons, end early) against the trusted harness: every cheat gets
reward 0 while the honest solution of the same tests passes.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from bgpo.config import ConfigError
from bgpo.sandbox import Sandbox, SandboxLimits, SandboxUnavailable, bwrap_available
from bgpo.tasks.code_exec import CodeRunner

LIMITS = SandboxLimits(wall_time=5.0, cpu_time=4, memory_bytes=512 << 20, output_bytes=64 << 10, max_processes=24)
BACKENDS = [
    "rlimit-unsafe",
    pytest.param("bwrap", marks=pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not installed")),
]
ANY = "auto" if bwrap_available() else "rlimit-unsafe"  # for tests that hold on either backend
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
        uids = set(sandbox.uid_range)
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
    with pytest.raises(ConfigError, match=r"sandbox\.backend must be one of 'auto', 'bwrap', 'rlimit-unsafe'"):
        Sandbox(backend="docker")
    with pytest.raises(ConfigError, match=r"'rlimit' is now called 'rlimit-unsafe'"):
        Sandbox(backend="rlimit")


def test_auto_refuses_without_bubblewrap_and_says_how_to_install_it_or_opt_in(monkeypatch):
    monkeypatch.setattr("bgpo.sandbox.bwrap_available", lambda: False)
    for backend in ("auto", "bwrap"):
        with pytest.raises(SandboxUnavailable, match=r"apt-get install bubblewrap.*backend='rlimit-unsafe'"):
            Sandbox(LIMITS, backend=backend)
    runner = CodeRunner(LIMITS)  # a code reward refuses to run rather than grade without isolation
    with pytest.raises(SandboxUnavailable):
        runner.run(["def f(x, y):\n    return x + y\n"], [ADD_TESTS])
    with pytest.raises(SandboxUnavailable):
        _ = runner.backend  # what a run's metadata would record
    unsafe = CodeRunner(LIMITS, backend="rlimit-unsafe")  # the explicit opt-in still works, and says so
    assert unsafe.backend == "rlimit-unsafe"
    assert [r.passed for r in unsafe.run(["def f(x, y):\n    return x + y\n"], [ADD_TESTS])] == [True]


# ------------------------------------------------------------------------------- isolation and caps (bwrap)
needs_bwrap = pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not installed")


@needs_bwrap
def test_only_system_directories_are_visible(private_tmp):
    secret = Path(private_tmp) / "answers.txt"  # like a data set or a checkout: a world-readable host file
    secret.write_text("the expected outputs")
    secret.chmod(0o644)
    probe = (
        "import os\nprint(sorted(os.listdir('/')))\n"
        f"for path in [{str(secret)!r}, {str(Path(__file__).resolve())!r}, '/root', '/home', '/work']:\n"
        "    print(path, os.path.exists(path))\n"
    )
    result = Sandbox(LIMITS, backend="bwrap").run(probe)
    assert result.ok, result.stderr
    listed, *checks = result.stdout.splitlines()
    assert set(eval(listed)) <= {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "dev", "proc", "tmp"}
    assert checks and all(line.endswith(" False") for line in checks), checks


@needs_bwrap
def test_the_writable_tmpfs_is_capped_in_total(private_tmp):
    limits = SandboxLimits(wall_time=20.0, cpu_time=10, memory_bytes=512 << 20, disk_bytes=16 << 20)
    fill = (
        "import os\ntotal = 0\n"
        "for folder in ['.', '/tmp', '/dev/shm', '/var/tmp', '/dev', '/']:\n"
        "    for i in range(10_000):\n"
        "        try:\n"
        "            with open(os.path.join(folder, f'fill{i}'), 'wb') as f:\n"
        "                total += f.write(b'x' * (256 << 10))\n"
        "        except OSError:\n"
        "            break\n"
        "print(total)\n"
    )
    sandbox = Sandbox(limits, backend="bwrap")
    before = _leftover_dirs()
    result = sandbox.run(fill)
    assert result.ok, result.stderr
    # Every place that took writes is inside the cap, and the cap is what stopped them (not another limit).
    assert limits.disk_bytes // 2 < int(result.stdout) <= limits.disk_bytes
    assert _leftover_dirs() == before
    assert sandbox.run("print(len(os.listdir('/tmp/work')))\n".replace("print", "import os\nprint")).stdout == "1\n"


@needs_bwrap
def test_a_run_cgroup_caps_memory_across_processes(private_tmp):
    limits = SandboxLimits(wall_time=20.0, cpu_time=10, memory_bytes=256 << 20, disk_bytes=16 << 20)
    sandbox = Sandbox(limits, backend="bwrap")
    if not sandbox.memory_cgroup:
        pytest.skip("no writable memory cgroup here (needs root and a cgroup v1 or v2 memory controller)")
    # Four processes of 150 MiB each: each is under the per-process address-space limit, together they are
    # over the run's cgroup limit (memory_bytes + disk_bytes).
    spread = (
        "import os\npids = []\n"
        "for _ in range(4):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        block = bytearray(150 << 20)\n"
        "        for i in range(0, len(block), 4096):\n"
        "            block[i] = 1\n"
        "        os._exit(0)\n"
        "    pids.append(pid)\n"
        "codes = [os.waitpid(pid, 0)[1] for pid in pids]\n"
        "print(codes)\nraise SystemExit(any(codes))\n"
    )
    assert not sandbox.run(spread).ok
    small = spread.replace("150 << 20", "40 << 20")  # the same program within the limit succeeds
    assert sandbox.run(small).ok


# ------------------------------------------------------------------------------------- the code graders
ADD_TESTS = "assert f(1, 2) == 3\nassert f(2, 5) == 7\nassert f(-4, 4) == 0\n"
CHECK_TESTS = (
    "def check(candidate):\n    assert abs(candidate(1, 2) - 3) < 1e-9\n    assert candidate(2, 5) == 7\n\ncheck(f)\n"
)
STR_TESTS = "assert rev('ab') == 'ba'\nassert rev('abc') == 'cba'\n"
HONEST = {ADD_TESTS: "def f(x, y):\n    return x + y\n", CHECK_TESTS: "def f(x, y):\n    return x + y\n",
          STR_TESTS: "def rev(s):\n    return s[::-1]\n"}  # fmt: skip
FAKE = json.dumps({"passed": True, "asserts": 3, "detail": ""})
WRONG = "def f(x, y):\n    return 0\n"
CHEATS = {  # name: (program, tests)
    "print_argv": (f"import sys\nprint(sys.argv)\nprint({FAKE!r})\n{WRONG}", ADD_TESTS),
    "print_own_source": (
        "import sys\nfor path in [sys.argv[0], '/tmp/work/program.pyc', 'program.pyc', '/tmp/work/program.py']:\n"
        "    try:\n        print(open(path, 'rb').read())\n    except OSError:\n        pass\n" + WRONG,
        ADD_TESTS,
    ),
    "print_cmdline_and_environment": (
        "import os\nprint(dict(os.environ))\nfor pid in os.listdir('/proc'):\n"
        "    for name in ('cmdline', 'environ'):\n"
        "        try:\n            print(open(f'/proc/{pid}/{name}', 'rb').read())\n"
        "        except OSError:\n            pass\n" + WRONG,
        ADD_TESTS,
    ),
    "forge_the_verdict_on_every_descriptor": (  # its own, the harness's (via /proc), anyone's
        f"import os\nfake = {FAKE!r}.encode()\n"
        "for fd in range(3, 256):\n    try:\n        os.write(fd, fake)\n    except OSError:\n        pass\n"
        "for pid in os.listdir('/proc'):\n    for fd in range(64):\n        try:\n"
        "            w = os.open(f'/proc/{pid}/fd/{fd}', os.O_WRONLY | os.O_NONBLOCK)\n"
        "            os.write(w, fake)\n            os.close(w)\n"
        "        except OSError:\n            pass\n" + WRONG,
        ADD_TESTS,
    ),
    "read_the_harness_memory": (
        "import os\ndef f(x, y):\n    for path in (f'/proc/{os.getppid()}/mem', f'/proc/{os.getppid()}/environ'):\n"
        "        open(path, 'rb').read(1)  # PermissionError: the harness is not dumpable\n"
        "    return x + y\n",
        ADD_TESTS,
    ),
    "always_true_eq": (
        "class Yes:\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n"
        "        return False\n    def __bool__(self):\n        return True\n    def __lt__(self, other):\n"
        "        return True\n    def __sub__(self, other):\n        return self\n    def __abs__(self):\n"
        "        return self\n    __hash__ = object.__hash__\ndef f(x, y):\n    return Yes()\n",
        CHECK_TESTS,
    ),
    "lying_int_subclass": (
        "class Int(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
        "def f(x, y):\n    return Int(0)\n",
        ADD_TESTS,
    ),
    "lying_str_subclass": (
        "class Str(str):\n    def __eq__(self, other):\n        return True\n    __hash__ = str.__hash__\n"
        "def rev(s):\n    return Str('')\n",
        STR_TESTS,
    ),
    "redefine_a_builtin_the_tests_use": (
        "def abs(x):\n    return 0\ndef f(x, y):\n    return 0 if x == 1 else x + y\n",
        CHECK_TESTS,
    ),
    "os_exit_before_the_tests": ("import os\nos._exit(0)\n", ADD_TESTS),
    "os_exit_after_one_test": (
        "import os\ncalls = []\ndef f(x, y):\n    calls.append(1)\n    if len(calls) > 1:\n        os._exit(0)\n"
        "    return x + y\n",
        ADD_TESTS,
    ),
    "sys_exit_after_one_test": (
        "calls = []\ndef f(x, y):\n    calls.append(1)\n    if len(calls) > 1:\n        raise SystemExit(0)\n"
        "    return x + y\n",
        ADD_TESTS,
    ),
    "atexit_prints_a_pass": (
        f"import atexit, os\natexit.register(lambda: [print({FAKE!r})] + [os.write(fd, b'x') for fd in (3, 4, 5)])\n"
        + WRONG
        + "raise SystemExit(0)\n",
        ADD_TESTS,
    ),
    "kill_the_harness": (
        "import os, signal\ndef f(x, y):\n    os.kill(os.getppid(), signal.SIGKILL)\n    return x + y\n",
        ADD_TESTS,
    ),
    "stop_the_harness": (
        "import os, signal\ndef f(x, y):\n    os.kill(os.getppid(), signal.SIGSTOP)\n    return x + y\n",
        ADD_TESTS,
    ),
    "fill_the_tmpfs": (
        "import os\nfor folder in ['.', '/tmp', '/dev/shm']:\n    for i in range(100_000):\n        try:\n"
        "            open(os.path.join(folder, f'fill{i}'), 'wb').write(b'x' * (1 << 20))\n"
        "        except OSError:\n            break\n" + WRONG,
        ADD_TESTS,
    ),
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_cheats_get_no_reward_and_leave_nothing_behind(backend, private_tmp):
    cheats = dict(CHEATS)
    if backend != "bwrap":  # without a tmpfs cap it would fill the host's disk (README: what each backend guarantees)
        del cheats["fill_the_tmpfs"]
    runner = CodeRunner(SandboxLimits(wall_time=5.0, cpu_time=4, memory_bytes=512 << 20, disk_bytes=16 << 20),
                        backend=backend, workers=4)  # fmt: skip
    before = _leftover_dirs()
    names = list(cheats)
    programs = [cheats[n][0] for n in names] + list(HONEST.values())
    tests = [cheats[n][1] for n in names] + list(HONEST)
    runs = runner.run(programs, tests)
    results = dict(zip(names, runs, strict=False))
    # The honest solutions of the same tests pass: the cheats fail because they cheat.
    assert [r.passed for r in runs[len(names) :]] == [True] * len(HONEST)
    assert {n: r.status for n, r in results.items() if r.passed} == {}
    assert results["os_exit_before_the_tests"].status == "exited"
    assert results["os_exit_after_one_test"].status == "exited"
    assert results["kill_the_harness"].status == "no-verdict"
    assert results["stop_the_harness"].status == "timeout"
    # The object reaches the tests as a handle: no arithmetic, no comparison but identity, no truth value.
    assert results["always_true_eq"].status == "failed" and "'Handle'" in results["always_true_eq"].detail
    assert results["lying_int_subclass"].status == "failed"
    assert "PermissionError" in results["read_the_harness_memory"].detail
    # Nothing left behind, and the grader goes on grading.
    if runner.sandbox.as_root:
        assert _processes_of_uids(set(runner.sandbox.uid_range)) == []
    assert _leftover_dirs() == before
    assert [r.passed for r in runner.run(list(HONEST.values()), list(HONEST))] == [True] * len(HONEST)


def test_graders_count_every_assert_and_run_the_checker_with_trusted_helpers():
    runner = CodeRunner(LIMITS, backend=ANY)
    # A test file that checks nothing is not a pass; a checker whose helper the program redefines still uses
    # its own (HumanEval/32 checks a root with the prompt's ``poly``).
    helper = "def poly(x):\n    return x - 3\n\n\nroot = __program__.get('root')\nassert abs(poly(root())) < 1e-9\n"
    cheat = "def poly(x):\n    return 0\n\ndef root():\n    return 1.0\n"
    honest = "def poly(x):\n    return 0\n\ndef root():\n    return 3.0\n"
    runs = runner.run(["def f(x, y):\n    return x + y\n", cheat, honest], ["x = 1\n", helper, helper])
    assert [r.passed for r in runs] == [False, False, True]
    assert runs[0].detail == "no assert ran: the tests check nothing"


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_graders_at_once_do_not_kill_each_others_programs(backend, private_tmp):
    """A second OS process grades one correct slow program while this one grades quick programs (each run
    followed by its clean-up) in a loop: the slow program still passes."""
    other = subprocess.Popen(
        [sys.executable, "-c", SLOW_GRADER, backend],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": private_tmp},
    )
    assert other.stdout.readline().startswith("grading")  # its slow program is about to start
    quick = ["def f(x, y):\n    return x + y\n", WRONG, "import os, signal\nos.kill(-1, signal.SIGKILL)\n"]
    rounds, ours = 0, set()
    deadline = time.monotonic() + 30
    while other.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)  # the slow program runs by now
        # A fresh grader each round, as each new training process has: before ranges were allocated, every one
        # started at the same uid, and its first clean-up killed the other grader's program.
        runner = CodeRunner(LIMITS, backend=backend, workers=4)
        assert [r.passed for r in runner.run(quick, [ADD_TESTS] * 3)] == [True, False, False]
        ours |= set(runner.sandbox.uid_range or [])
        rounds += 1
    report = json.loads(other.stdout.read())
    assert other.wait() == 0
    assert rounds >= 2, "the quick programs did not overlap the slow one"
    assert report["passed"] is True, report
    assert not set(report["uids"]) & ours


SLOW_GRADER = """
import json, sys
from bgpo.sandbox import SandboxLimits
from bgpo.tasks.code_exec import CodeRunner
runner = CodeRunner(SandboxLimits(wall_time=30.0, cpu_time=10), backend=sys.argv[1])
uids = list(runner.sandbox.uid_range or [])
print("grading", flush=True)
slow = "import time\\ndef f(x, y):\\n    time.sleep(3)\\n    return x + y\\n"
run, = runner.run([slow], ["assert f(1, 2) == 3\\n"])
print(json.dumps({"passed": run.passed, "status": run.status, "detail": run.detail, "uids": uids}))
"""


def test_uid_ranges_are_disjoint_between_sandboxes():
    first, second = Sandbox(LIMITS, backend=ANY), Sandbox(LIMITS, backend=ANY)
    if not first.as_root:
        pytest.skip("per-run uids are used only as root")
    assert first.uid_range and second.uid_range
    assert not set(first.uid_range) & set(second.uid_range)
