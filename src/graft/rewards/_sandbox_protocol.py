"""What crosses between the program's process and the judge, and the judge itself.

Stdlib only; used by ``_sandbox_child.py`` on both sides of the boundary (the
sandbox passes this file's source to the child, which never reads it from disk).

Values cross as *plain data* only: ``to_wire`` accepts exactly ``None``, ``bool``,
``int``, ``float``, ``str``, ``bytes``, ``list``, ``tuple``, ``set``,
``frozenset`` and ``dict`` (and ``collections.Counter``, ``OrderedDict`` and
``defaultdict``, sent as ``dict``), checked with ``type(x) is ...``, so no
subclass and no user-defined ``__eq__``, ``__bool__`` or ``__abs__`` gets
through; JSON carries lists as arrays and the other containers as one-key
objects (``{"tuple": [...]}``, ``{"dict": [[k, v], ...]}``). ``from_wire`` is
the judge's side: whatever bytes the program's process sends, it yields only
those builtin types, or raises.

The judge (``judge_tests``) runs every statement of the tests itself, in its
own process, with each call to the program (``__graft_program__(k, *holes)``,
see ``graft.rewards.asserts``) sent over the socket as ``["eval", source,
[holes]]`` and answered ``["ok", value]`` or ``["error", reason, exception
name]`` by ``serve_program`` in the program's process. The program can read
and write that socket, since it shares the process with the code that serves
it: what it can send is values, which the judge compares itself, so a forged
reply must contain the right answer.
"""

import builtins
import collections
import json
import os
import select

PROGRAM_CALL = "__graft_program__"
HOLE = "_graft_"
MAX_DEPTH = 64
LOAD_REASONS = ("ok", "syntax", "runtime", "memory", "wrong_answer")
_DICT_LIKE = (collections.Counter, collections.OrderedDict, collections.defaultdict)
_TAGS = {"tuple": tuple, "set": set, "frozenset": frozenset}


class NotPlain(Exception):  # a kind of value, not an error of the grader
    """A value that cannot cross the boundary (``value``: the first such part of it)."""

    def __init__(self, why, value=None):
        super().__init__(why)
        self.value = value


def to_wire(value, depth=0, limit=MAX_DEPTH):
    """A JSON-ready copy of a plain value; NotPlain for anything else (subclasses included).

    ``limit``: deepest nesting accepted (the judge allows its own values twice the program's, so
    that wrapping a program's value in a test's list never becomes the test's error)."""
    kind = type(value)
    if value is None or kind is bool or kind is int or kind is float or kind is str:
        return value
    if depth >= limit:
        raise NotPlain(f"nested deeper than {limit}")
    if kind is list:
        return [to_wire(v, depth + 1, limit) for v in value]
    if kind is tuple or kind is set or kind is frozenset:
        return {kind.__name__: [to_wire(v, depth + 1, limit) for v in value]}
    if kind is dict or kind in _DICT_LIKE:
        return {"dict": [[to_wire(k, depth + 1, limit), to_wire(v, depth + 1, limit)]
                         for k, v in dict.items(value)]}
    if kind is bytes:
        return {"bytes": value.hex()}
    raise NotPlain("not plain data", value)


def _tagged(pairs):
    if len(pairs) == 1:
        tag, body = pairs[0]
        if tag in _TAGS and type(body) is list:
            return _TAGS[tag](body)
        if tag == "dict" and type(body) is list and all(type(p) is list and len(p) == 2 for p in body):
            return dict(body)
        if tag == "bytes" and type(body) is str:
            return bytes.fromhex(body)
    raise ValueError("not a tagged value")


def from_wire(text, limit=MAX_DEPTH):
    """Parse one message (a list holding values nested at most ``limit`` deep); only builtin plain
    types come out. ValueError, TypeError or RecursionError if it is malformed."""
    message = json.loads(text, object_pairs_hook=_tagged)
    containers = (list, tuple, set, frozenset, dict)
    level, depth = [message], 0
    while level:
        depth += 1
        if depth > limit + 1:  # the message's own list, then the values' containers
            raise ValueError(f"nested deeper than {limit}")
        level = [v for c in level if type(c) in containers
                 for v in ((*c.keys(), *c.values()) if type(c) is dict else c) if type(v) in containers]
    return message


def dumps(message):
    """One message as a line (ValueError for an int too long to print, NotPlain for other values)."""
    return (json.dumps(message) + "\n").encode()


class Channel:
    """Newline-delimited messages on a socket; ``read`` returns None once the other side is gone.

    ``pidfd`` (the judge's side): the other side's process exiting ends the wait even when a
    process it left behind still holds the socket. ``cap``: longest message accepted.
    """

    def __init__(self, fd, cap=None, pidfd=None):
        self.fd, self.cap, self.pidfd = fd, cap, pidfd
        self.buf = b""
        self.gone = False

    def send(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def read(self):
        while b"\n" not in self.buf:
            if self.cap is not None and len(self.buf) > self.cap:
                raise OverflowError("message over the output limit")
            if self.gone:
                return None
            watch = [self.fd] if self.pidfd is None else [self.fd, self.pidfd]
            ready = select.select(watch, [], [])[0]
            if self.fd not in ready:  # the process exited: take what it left in the socket, then stop
                self.pidfd, self.gone = None, True
                if not select.select([self.fd], [], [], 0)[0]:
                    return None
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                self.gone = True
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        if self.cap is not None and len(line) > self.cap:
            raise OverflowError("message over the output limit")
        return line


def classify(exc):
    if isinstance(exc, MemoryError):
        return "memory"
    if isinstance(exc, AssertionError):
        return "wrong_answer"
    return "runtime"


def _builtin_name(exc):
    name = type(exc).__name__
    return name if getattr(builtins, name, None) is type(exc) else None


def serve_program(channel, namespace, me):
    """The program's side: evaluate each requested call in the program's namespace; returns at EOF."""
    while True:
        line = channel.read()
        if line is None or os.getpid() != me:  # EOF, or a child the program forked fell through to here
            return
        try:
            _, source, holes = from_wire(line, limit=2 * MAX_DEPTH)
            scope = dict(namespace)
            scope.update((f"{HOLE}{j}", value) for j, value in enumerate(holes))
            value = eval(compile(source, "<test>", "eval"), scope)  # the program's side
        except BaseException as exc:  # noqa: BLE001 - SystemExit, KeyboardInterrupt, ... are failures too
            reply = ["error", classify(exc), _builtin_name(exc)]
        else:
            try:
                reply = ["ok", to_wire(value)]
                data = dumps(reply)
            except NotPlain:  # a function or class stays here; the judge may call it (plain data only)
                reply = ["callable", None] if callable(value) else ["error", "wrong_answer", None]
            except (ValueError, RecursionError):
                reply = ["error", "wrong_answer", None]
            except MemoryError:
                reply = ["error", "memory", None]
            else:
                channel.send(data)
                continue
        channel.send(dumps(reply))


class ProgramError(Exception):
    """The program raised while the tests called it (a subclass of the builtin it raised, when it was one)."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class ProgramFailed(BaseException):  # not meant to be caught by test code
    """No usable value: not plain data, over the output limit, or the program's process is gone ("lost")."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class BadTest(BaseException):
    """The tests themselves cannot be graded this way (a dataset error, not the program's)."""


_MIRRORS = {}


def _program_error(reason, name):
    base = getattr(builtins, name, None) if isinstance(name, str) else None
    if not (isinstance(base, type) and issubclass(base, Exception)) or issubclass(base, ProgramError):
        return ProgramError(reason)
    if name not in _MIRRORS:
        try:
            _MIRRORS[name] = type(f"Program{name}", (ProgramError, base), {})
        except TypeError:  # a builtin that cannot be a second base
            _MIRRORS[name] = ProgramError
    try:
        return _MIRRORS[name](reason)
    except TypeError:
        return ProgramError(reason)


class _Calls:
    """``__graft_program__`` of the judge's namespace: one round trip to the program per call."""

    def __init__(self, channel, leaves, shown=None):
        self.channel, self.leaves, self.shown = channel, leaves, shown or leaves
        self.broken = None  # once the stream is unusable, every later call fails the same way
        # Within one statement of the tests, the same call with the same arguments is made once:
        # otherwise `any(f(x) == c for c in C)` would let the program try a new answer per c.
        self.memo: dict[bytes, bytes] = {}

    def __call__(self, k, *holes):
        return self.request(self.leaves[k], holes, self.shown[k])

    def request(self, source, holes, shown=None):
        if self.broken:
            raise ProgramFailed(self.broken)
        try:
            data = dumps(["eval", source, [to_wire(h, limit=2 * MAX_DEPTH) for h in holes]])
        except NotPlain as exc:
            if isinstance(exc.value, _Remote):  # the program's own object, sent back: fail closed
                raise ProgramFailed("wrong_answer") from None
            raise BadTest(f"the call `{shown or source}` needs a value the tests compute, and it is not "
                          f"plain data ({exc}): only None, bool, int, float, str, bytes, list, tuple, "
                          "set, frozenset and dict can be passed to the program") from None
        except ValueError:  # an int too long to print, computed from the program's values
            raise ProgramFailed("runtime") from None
        try:
            line = self.memo.get(data)
            if line is None:
                self.channel.send(data)
                line = self.channel.read()
                if line is not None:
                    self.memo[data] = line
        except OverflowError:
            self.broken = "output_limit"
            raise ProgramFailed(self.broken) from None
        except OSError:
            line = None
        if line is None:
            self.broken = "lost"
            raise ProgramFailed(self.broken)
        try:
            reply = from_wire(line)
            status, payload = reply[0], reply[1]
        except (ValueError, TypeError, IndexError, KeyError, RecursionError, MemoryError):
            raise ProgramFailed("wrong_answer") from None  # malformed: whatever the program wrote there
        if status == "ok":
            return payload
        if status == "callable":
            return _Remote(self, source)
        if status == "error" and payload in ("runtime", "memory", "wrong_answer"):
            raise _program_error(payload, reply[2] if len(reply) > 2 else None)
        raise ProgramFailed("wrong_answer")


class _Remote:
    """A function (or class) of the program, handed to test code: calling it is one more request.

    Its arguments must be plain data and so is what comes back; nothing else about it is the
    program's (equality is identity, as for any function)."""

    def __init__(self, calls, source):
        self._calls, self._source = calls, source

    def __call__(self, *args, **kwargs):
        return self._calls.request(f"({self._source})(*{HOLE}0, **{HOLE}1)", (list(args), kwargs))

    def __repr__(self):
        return f"<the program's {self._source}>"


def _verdict(code, namespace):
    try:
        return "ok" if eval(code, namespace) else "wrong_answer"  # the tests' own code
    except (ProgramError, ProgramFailed) as exc:
        return exc.reason
    except BadTest:
        raise
    except MemoryError:
        return "memory"
    except BaseException:  # noqa: BLE001 - the tests' own failure, e.g. a TypeError on a wrong type
        return "runtime"


def judge_tests(plan, channel, load, report):
    """Run the tests against the program; ``report(line)`` gets ``test <j> <reason>`` for each assert.

    ``load``: the program's load result ("ok", a reason, or None if its process is gone).
    A test that cannot be graded reports ``bad_test <line> <message>``.
    """
    tests = [item for item in plan["items"] if item["kind"] == "test"]
    if load != "ok":
        for j in range(len(tests)):
            report(f"test {j} {load or 'lost'}")
        return
    calls = _Calls(channel, plan["leaves"], plan.get("shown"))
    namespace = {"__builtins__": builtins, "__name__": "__tests__", PROGRAM_CALL: calls}
    j = 0
    for item in plan["items"]:
        calls.memo = {}
        where = f"<tests, line {item['line']}>"
        try:
            if item["kind"] == "setup":
                try:
                    exec(compile(item["code"], where, "exec"), namespace)  # noqa: S102 - the tests' own code
                except (BadTest, ProgramFailed):
                    raise
                except BaseException:  # noqa: BLE001, S110 - as before: a failed setup step fails its tests later
                    pass
                continue
            verdict = _verdict(compile(item["code"], where, "eval"), namespace)
        except BadTest as exc:
            report(f"bad_test {item['line']} {exc}")
            verdict = "runtime"
        except ProgramFailed:
            continue  # a setup step lost the program: the tests after it will say so
        if item["kind"] == "test":
            report(f"test {j} {verdict}")
            j += 1
