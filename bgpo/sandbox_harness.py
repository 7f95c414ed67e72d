"""The trusted test harness that runs inside the sandbox: ``python -I -S -B harness.py VERDICT_FD``.

It is a script, not a module the package imports at run time: the sandbox copies this file in as the program
it runs, and it imports nothing but the standard library (and little of it: start-up is most of a run's cost).
Standard input holds the job, ``encode((code, tests, setup, load), None)``: the program's source, the test
source, imports the program may rely on (the tests' own), and whether to run the program as a module first.

Two processes, so that the program never shares an address space, a descriptor or a decision with the tests:

1. The harness makes itself non-dumpable (``prctl(PR_SET_DUMPABLE, 0)``: a process of the same user can then
   neither ptrace it nor open its ``/proc/PID/{mem,fd,environ}``), then forks the **program's process** before
   it has read anything. That child closes the verdict descriptor and standard input at once; it never holds
   the tests, the expected values or the verdict channel, and its memory is a copy of a harness that had
   not read the job.
2. The harness reads the job, sends the code to the child (which executes it as a module) and runs the tests
   **itself**. A name the tests use that is neither defined by the tests nor a builtin is looked up in the
   child's module. What comes back is data, decoded here by a strict decoder into exact builtin types
   (``int``, ``float``, ``str``, ``bytes``, ``list``, ``tuple``, ``dict``, ``set``, ...), or a handle: a
   function, class or object of the program, which the tests can call, read attributes of, set attributes
   on and iterate (each runs in the child; its result comes back the same way). So every comparison in the
   tests runs here, between builtin values: an object whose ``__eq__`` always returns True is a handle that
   equals nothing, and whose truth value is an error; a subclass of ``int`` or ``str`` arrives as the plain
   ``int`` or ``str`` it holds. Builtin values compare as Python compares them (``1 == 1.0 == True``), as in
   the official HumanEval and MBPP harnesses. The tests' names resolve to the builtins before the program's
   (a program's own ``abs`` does not change what a test computes with ``abs``).
3. The tests pass if they run to the end: every ``assert`` executed and held (the grader instruments each
   one with a counter and requires at least one). The harness writes the verdict, ``"<passed> <asserts>
   <exited>\n<detail>"``, to ``VERDICT_FD``, which only it holds, then kills the child.

The program can end its own process (``os._exit``, a signal), print anything, read its own files, argv and
environment: none of it reaches the verdict, and a program process that is gone or that answers out of
protocol fails the run even if the tests catch the error. It can kill or stop the harness (same user):
then no verdict is written and the run fails. What it cannot do is answer a call with anything but values
it computed: passing requires returning the right values. Not defended: a program that knows the expected
values (MBPP shows its asserts in the prompt) can return them without computing them, as with any harness.
"""

from __future__ import annotations

import builtins
import os
import struct
import sys

# Only C modules and nothing that imports ``re``: start-up is most of what a run costs (json would double it).
_LEN = struct.Struct("<Q")
_F64 = struct.Struct("<d")
_MAX_MESSAGE = 1 << 30  # a message longer than this is a protocol violation (the memory limit is lower anyway)
_MAX_ITEMS = 1_000_000  # an iterator the program returns is materialised up to this length
_MAX_DEPTH = 500  # nesting of a value (each level is a Python call on both sides)
_PR_SET_DUMPABLE = 4


class ProtocolError(BaseException):
    """The program's process ended or answered out of protocol. A BaseException: ``except Exception`` in a
    test does not swallow it (and the harness fails the run even if a bare ``except`` does)."""


class ProgramError(Exception):
    """The program raised an exception that is not a builtin ``Exception`` (its own class, or SystemExit)."""


# ------------------------------------------------------------------------------------------ wire format
# A value is a tag byte and its payload: N None, T/F bools, i int (length, little-endian two's complement),
# f float, c complex, s str (length, UTF-8), b bytes, y bytearray, l/t/S/z list/tuple/set/frozenset (count,
# items), d dict (count, key-value pairs), r range (three ints), K/V/E the keys/values/items of a dict
# (count, items), I an iterator of the program, materialised (count, items), m a module (its name),
# h a handle (id, 1 if callable).
_SEQUENCES = {list: b"l", tuple: b"t", set: b"S", frozenset: b"z"}
_VIEWS = {type({}.keys()): b"K", type({}.values()): b"V", type({}.items()): b"E"}
_BASES = (
    (int, int.__index__),
    (float, float.__float__),
    (str, str.__str__),
    (bytes, bytes),
    (list, lambda v: list(list.__iter__(v))),
    (tuple, lambda v: tuple(tuple.__iter__(v))),
    (dict, lambda v: dict(dict.items(v))),
    (frozenset, lambda v: frozenset(frozenset.__iter__(v))),
    (set, lambda v: set(set.__iter__(v))),
)


def encode(value: object, handles: dict | None) -> bytes:
    """The bytes of a value. On the harness's side (``handles`` None) only builtin values and the program's
    own handles go out. On the program's side a subclass of a builtin type goes as the builtin value it holds
    (its own ``__eq__``, ``__str__``, ... stay there, where they cannot influence a comparison), an iterator
    is materialised, and anything else becomes a handle kept in ``handles``."""
    out: list[bytes] = []
    _encode(value, handles, out, 0)
    return b"".join(out)


def _encode(value: object, handles: dict | None, out: list[bytes], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError("a value nested too deeply")
    kind = type(value)
    if value is None:
        out.append(b"N")
    elif kind is bool:
        out.append(b"T" if value else b"F")
    elif kind is int:
        size = value.bit_length() // 8 + 1
        out += (b"i", _LEN.pack(size), value.to_bytes(size, "little", signed=True))
    elif kind is float:
        out += (b"f", _F64.pack(value))
    elif kind is str or kind is bytes or kind is bytearray:
        data = value.encode("utf-8", "surrogatepass") if kind is str else bytes(value)
        out += (b"s" if kind is str else b"b" if kind is bytes else b"y", _LEN.pack(len(data)), data)
    elif kind in _SEQUENCES or kind in _VIEWS:
        out += (_SEQUENCES.get(kind) or _VIEWS[kind], _LEN.pack(len(value)))
        for item in value:
            _encode(item, handles, out, depth + 1)
    elif kind is dict:
        out += (b"d", _LEN.pack(len(value)))
        for key, item in value.items():
            _encode(key, handles, out, depth + 1)
            _encode(item, handles, out, depth + 1)
    elif kind is complex:
        out += (b"c", _F64.pack(value.real), _F64.pack(value.imag))
    elif kind is range:
        out.append(b"r")
        for end in (value.start, value.stop, value.step):
            _encode(end, handles, out, depth + 1)
    elif kind is type(sys):
        out.append(b"m")
        _encode(value.__name__, handles, out, depth + 1)
    elif handles is None:
        if kind is not Handle:
            raise TypeError(f"a test passed a {kind.__name__} to the program; only builtin values and the "
                            "program's own objects can be passed")  # fmt: skip
        out += (b"h", _LEN.pack(object.__getattribute__(value, "_id")), b"\0")
    else:
        for base, convert in _BASES:
            if isinstance(value, base):
                _encode(convert(value), handles, out, depth)
                return
        if hasattr(kind, "__next__") and hasattr(kind, "__iter__"):  # a generator, map, zip, ... of the program
            items: list[bytes] = []
            count = 0
            for item in value:
                _encode(item, handles, items, depth + 1)
                count += 1
                if count > _MAX_ITEMS:
                    raise ValueError(f"an iterator of more than {_MAX_ITEMS} items")
            out += (b"I", _LEN.pack(count), *items)
        else:
            handles[id(value)] = value
            out += (b"h", _LEN.pack(id(value)), b"\1" if callable(value) else b"\0")


class Decoder:
    """Builds a value from ``encode``'s bytes out of exact builtin types; ``resolve(tag, payload)`` makes
    modules (``m``) and handles (``h``). Malformed input raises ValueError (or TypeError, for an unhashable
    key)."""

    def __init__(self, data: bytes, resolve) -> None:
        self.data, self.pos, self.resolve = data, 0, resolve

    def value(self) -> object:
        """The whole input as one value."""
        value = self._value(0)
        if self.pos != len(self.data):
            raise ValueError("bytes after the value")
        return value

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise ValueError("a value runs past the end of the message")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def _length(self) -> int:
        return _LEN.unpack(self._take(8))[0]

    def _value(self, depth: int) -> object:
        if depth > _MAX_DEPTH:
            raise ValueError("a value nested too deeply")
        tag = self._take(1)
        if tag == b"N":
            return None
        if tag in (b"T", b"F"):
            return tag == b"T"
        if tag == b"i":
            return int.from_bytes(self._take(self._length()), "little", signed=True)
        if tag == b"f":
            return _F64.unpack(self._take(8))[0]
        if tag == b"s":
            return self._take(self._length()).decode("utf-8", "surrogatepass")
        if tag == b"b":
            return self._take(self._length())
        if tag == b"y":
            return bytearray(self._take(self._length()))
        if tag == b"c":
            return complex(_F64.unpack(self._take(8))[0], _F64.unpack(self._take(8))[0])
        if tag == b"r":
            ends = [self._value(depth + 1) for _ in range(3)]
            if not all(type(end) is int for end in ends):
                raise ValueError("a range must be three ints")
            return range(*ends)
        if tag == b"m":
            name = self._value(depth + 1)
            if type(name) is not str:
                raise ValueError("a module name must be a str")
            return self.resolve("m", name)
        if tag == b"h":
            return self.resolve("h", (self._length(), self._take(1) == b"\1"))
        count = self._length()
        if count > len(self.data) - self.pos:  # every item takes at least one byte
            raise ValueError("more items than bytes")
        if tag == b"d":
            pairs = [(self._value(depth + 1), self._value(depth + 1)) for _ in range(count)]
            return dict(pairs)
        items = [self._value(depth + 1) for _ in range(count)]
        if tag == b"l":
            return items
        if tag == b"t":
            return tuple(items)
        if tag == b"S":
            return set(items)
        if tag == b"z":
            return frozenset(items)
        if tag == b"I":
            return iter(items)
        if tag == b"K":
            return dict.fromkeys(items).keys()
        if tag == b"V":
            return dict(enumerate(items)).values()
        if tag == b"E":
            if not all(type(pair) is tuple and len(pair) == 2 for pair in items):
                raise ValueError("dict items must be pairs")
            return dict(items).items()
        raise ValueError(f"unknown tag {tag!r}")


def _send(fd: int, message: object, handles: dict | None) -> None:
    _write_frame(fd, encode(message, handles))


def _write_frame(fd: int, data: bytes) -> None:
    view = memoryview(_LEN.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(fd: int, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("the other process closed its end")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _recv(fd: int, resolve) -> object:
    (size,) = _LEN.unpack(_read_exactly(fd, _LEN.size))
    if size > _MAX_MESSAGE:
        raise ValueError(f"a message of {size} bytes")
    return Decoder(_read_exactly(fd, size), resolve).value()


# ---------------------------------------------------------------------------------- the program's process
def _serve(requests: int, replies: int) -> None:
    """The program's process: execute requests from the harness until it closes the pipe."""
    handles: dict[int, object] = {}
    module: dict | None = None

    def resolve(tag: str, payload: object) -> object:
        if tag == "m":
            return __import__(payload, fromlist=["_"])
        return handles[payload[0]]

    while True:
        try:
            request = _recv(requests, resolve)
        except (EOFError, OSError, ValueError, KeyError):
            os._exit(0)
        op, args = request[0], request[1:]
        try:
            if op == "load":
                code, setup = args
                module = {"__name__": "__main__", "__builtins__": builtins}
                try:
                    exec(compile(code, "<program>", "exec"), module)
                    exec(compile(setup, "<setup>", "exec"), module)
                except BaseException as exc:
                    _report(exc, code)
                    raise
                result = None
            elif op == "get":
                if module is None or args[0] not in module:
                    _send(replies, ("missing",), handles)
                    continue
                result = module[args[0]]
            elif op == "call":
                result = args[0](*args[1], **args[2])
            elif op == "getattr":
                result = getattr(args[0], args[1])
            elif op == "setattr":
                setattr(args[0], args[1], args[2])
                result = None
            elif op == "iter":
                result = iter(args[0])
            elif op == "run":
                result = _run_script(args[0], args[1])
            else:
                raise ValueError(f"unknown request {op!r}")
            reply = encode(("ok", result), handles)
        except BaseException as exc:  # the program's exception (or SystemExit) goes to the tests
            reply = encode(("raise", type(exc).__name__, _text(exc)), handles)
        _write_frame(replies, reply)


def _report(exc: BaseException, code: str) -> None:
    """Where loading the program failed, on the run's stderr (the failure report shows its last lines);
    without ``traceback``, whose import would cost a failing run more than the run itself."""
    lines = code.splitlines()
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame.f_code
        if frame.co_filename == "<program>":
            text = lines[tb.tb_lineno - 1].strip() if 0 < tb.tb_lineno <= len(lines) else ""
            sys.stderr.write(f"  program line {tb.tb_lineno}, in {frame.co_name}: {text}\n")
        tb = tb.tb_next
    sys.stderr.write(f"{type(exc).__name__}: {_text(exc)}\n")


def _run_script(code: str, stdin: str) -> str:
    """Run the program as a script on ``stdin``; what it printed (a SystemExit ends it normally)."""
    import io

    saved = sys.stdin, sys.stdout
    sys.stdin, sys.stdout = io.StringIO(stdin), io.StringIO()
    try:
        exec(compile(code, "<program>", "exec"), {"__name__": "__main__", "__builtins__": builtins})
    except SystemExit:
        pass
    finally:
        printed = sys.stdout.getvalue() if isinstance(sys.stdout, io.StringIO) else ""
        sys.stdin, sys.stdout = saved
    return printed


def _text(exc: BaseException) -> str:
    try:
        return str(exc)[:2000]
    except BaseException:
        return "<unprintable>"


# ------------------------------------------------------------------------------------------ the harness
class Program:
    """The harness's connection to the program's process; the ``__program__`` object of the tests."""

    def __init__(self, requests: int, replies: int, code: str, setup: str) -> None:
        self._requests, self._replies, self.code, self.setup = requests, replies, code, setup
        self.broken: str | None = None

    def request(self, *message: object) -> object:
        """Send a request and return the decoded answer, or raise the program's exception."""
        if self.broken:
            raise ProtocolError(self.broken)
        try:
            _send(self._requests, message, None)
            reply = _recv(self._replies, self._resolve)
            if type(reply) is not tuple or not reply or reply[0] not in ("ok", "raise", "missing"):
                raise ValueError("a reply that is not a tuple starting with ok, raise or missing")
            if reply[0] == "missing":
                return _MISSING
            if reply[0] == "ok":
                if len(reply) != 2:
                    raise ValueError("a malformed ok reply")
                return reply[1]
            if len(reply) != 3 or type(reply[1]) is not str or type(reply[2]) is not str:
                raise ValueError("a malformed raise reply")
        except (OSError, EOFError, ValueError, TypeError, RecursionError, MemoryError, struct.error) as exc:
            self.broken = f"the program's process ended or broke the protocol ({type(exc).__name__}: {exc})"
            raise ProtocolError(self.broken) from None
        raise _exception(reply[1], reply[2])

    def _resolve(self, tag: str, payload: object) -> object:
        if tag == "m":
            if payload.split(".")[0] not in sys.stdlib_module_names:
                raise ValueError(f"module {payload!r} is not in the standard library")
            return __import__(payload, fromlist=["_"])
        return Handle(self, *payload)

    def load(self) -> None:
        """Execute the program as a module (done before the tests when the job says so)."""
        self.request("load", self.code, self.setup)

    def run(self, stdin: str) -> str:
        """Run the program as a script on ``stdin``, in its process; what it printed."""
        return self.request("run", self.code, stdin)

    def get(self, name: str) -> object:
        """The value of a name of the program's module (NameError if it defines none)."""
        value = self.request("get", name)
        if value is _MISSING:
            raise NameError(f"name {name!r} is not defined")
        return value

    def defines(self, name: str) -> bool:
        """Whether the program's module defines ``name``."""
        return self.request("get", name) is not _MISSING


_MISSING = object()


def _exception(name: str, message: str) -> BaseException:
    """The program's exception, re-raised here: a builtin Exception by its class, else ProgramError."""
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(message)
        except Exception:
            pass
    return ProgramError(f"{name}: {message}")


class Handle:
    """A function, class or object of the program: calls, attribute access and iteration run in its process.

    It defines no comparison (it equals only itself), no truth value, no arithmetic, no length: a test that
    compares it with a value fails.
    """

    __slots__ = ("_callable", "_id", "_program")

    def __init__(self, program: Program, ident: int, is_callable: bool) -> None:
        object.__setattr__(self, "_program", program)
        object.__setattr__(self, "_id", ident)
        object.__setattr__(self, "_callable", is_callable)

    def __call__(self, *args: object, **kwargs: object) -> object:
        return object.__getattribute__(self, "_program").request("call", self, list(args), kwargs)

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        return object.__getattribute__(self, "_program").request("getattr", self, name)

    def __setattr__(self, name: str, value: object) -> None:
        object.__getattribute__(self, "_program").request("setattr", self, name, value)

    def __iter__(self):
        return iter(object.__getattribute__(self, "_program").request("iter", self))

    def __bool__(self) -> bool:
        raise TypeError("the truth value of an object of the program is not defined here (only builtin values are)")

    def __repr__(self) -> str:
        return f"<object of the program #{object.__getattribute__(self, '_id')}>"


class Names(dict):
    """The tests' globals: their own names, then the builtins, then the program's module (cached)."""

    def __init__(self, program: Program) -> None:
        super().__init__()
        self.program = program

    def __missing__(self, name: str) -> object:
        # The builtins come before the program's names: a program that defines its own ``abs`` or ``len``
        # does not change what the tests compute with them.
        if hasattr(builtins, name):
            return getattr(builtins, name)
        value = self.program.get(name)
        self[name] = value
        return value


def run_tests(tests: str, program: Program, load: bool) -> tuple[bool, int, bool, str]:
    """Run the tests against the program: (passed, asserts executed, the program's process broke, detail)."""
    count = [0]

    def assert_ran() -> None:
        count[0] += 1

    names = Names(program)
    names.update({"__name__": "__main__", "__builtins__": builtins, "__program__": program,
                  "_bgpo_assert_ran": assert_ran})  # fmt: skip
    stage = "loading the program"
    try:
        code = compile(tests, "<tests>", "exec")
        if load:
            program.load()
        stage = "the tests"
        exec(code, names)
    except BaseException as exc:  # every way of not finishing the tests is a failure
        line, tb = None, exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "<tests>":
                line = tb.tb_lineno
            tb = tb.tb_next
        where = f" (tests line {line})" if line is not None else ""
        return False, count[0], program.broken is not None, f"{stage}: {type(exc).__name__}: {_text(exc)}{where}"
    if program.broken:  # a test caught the ProtocolError: the run still fails
        return False, count[0], True, program.broken
    return True, count[0], False, ""


def _no_dumping() -> None:
    """prctl(PR_SET_DUMPABLE, 0), through ``_ctypes`` (importing ``ctypes`` would cost a few ms per run)."""
    try:
        import _ctypes

        prctl = _ctypes.dlsym(_ctypes.dlopen(None), "prctl")
        failed = _ctypes.call_function(prctl, (_PR_SET_DUMPABLE, 0, 0, 0, 0)) != 0
    except (ImportError, AttributeError, OSError):
        import ctypes

        failed = ctypes.CDLL(None).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0
    if failed:
        raise OSError("prctl(PR_SET_DUMPABLE, 0) failed: the program could reach the harness")


def read_job(data: bytes) -> tuple[str, str, str, bool]:
    """(code, tests, setup, load) from the job's bytes: ``encode((code, tests, setup, load), None)``."""
    job = Decoder(data, None).value()
    if type(job) is not tuple or len(job) != 4:
        raise ValueError("a job is (code, tests, setup, load)")
    return job


def main() -> None:
    """Fork the program's process, run the tests, write the verdict."""
    verdict_fd = int(sys.argv[1])
    _no_dumping()  # before the fork: from here on the child cannot reach this process's memory or descriptors
    from_harness, to_child = os.pipe()  # (read end, write end)
    from_child, to_harness = os.pipe()
    pid = os.fork()
    if pid == 0:  # the program's process
        os.close(verdict_fd)
        os.close(to_child)
        os.close(from_child)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        _serve(from_harness, to_harness)
        os._exit(0)
    os.close(from_harness)
    os.close(to_harness)
    code, tests, setup, load = read_job(sys.stdin.buffer.read())
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    passed, asserts, exited, detail = run_tests(tests, Program(to_child, from_child, code, setup), load)
    # One short line and one write: "<passed> <asserts> <exited>\n<detail>".
    verdict = f"{int(passed)} {asserts} {int(exited)}\n{detail[:500]}"
    os.write(verdict_fd, verdict.encode("utf-8", "replace"))
    os.close(verdict_fd)
    os.kill(pid, 9)
    os._exit(0)


if __name__ == "__main__":
    main()
