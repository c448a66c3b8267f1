"""The sandbox's first process: isolate, start the program's side, and judge it from outside.

Run by ``sandbox.py`` as ``python -I -B -c <this source> <protocol source>`` in
a new session with a sanitised environment (it reads no file of graft's);
stdlib only. Its stdin carries ``<n>\\n``, then ``n`` bytes of JSON for the
program's side (``code``, ``mode``, ``input``, ``workdir``, ``uid``, ``limits``,
``isolate``, ``report_fd``), read *before* the fork, then the tests' plan (JSON,
``graft.rewards.asserts``), read by this process only *after* the fork, so the
program's process never holds it. Then:

1. (``isolate``) ``unshare`` new mount, network, PID, IPC and UTS namespaces
   (plus a user namespace when not root); as root, the interpreter's own
   directories made reachable if they sit under a closed one (``/root``);
   fresh size-limited tmpfs over
   ``/tmp``, ``/var/tmp``, ``/dev/shm``, ``/run/lock`` and the working
   directory, so every file the program writes disappears with it; an empty
   network namespace (no interface but a down loopback).
2. fork the program's side, which first closes everything of the judge's (the
   report pipe, the judge's socket end, stdin). Isolated: the PID namespace's
   init (pid 1), which mounts a private ``/proc``, forks the runner and reaps;
   when the runner ends, init exits and the kernel kills everything left in
   the namespace (double-forked daemons included). Otherwise the runner itself.
3. runner: rlimits (CPU, address space, file size, processes, open files, no
   core dumps), a dedicated uid/gid with no supplementary groups (as root) or
   all capabilities dropped (user namespace), ``no_new_privs``; then compile
   and run the program, and answer the judge's calls (``_sandbox_protocol``).
4. this process, the judge: outside the runner's PID namespace and (as root)
   under another uid, so the program can neither see nor signal nor trace it.
   It runs the tests and writes one status line per event to ``report_fd``,
   which only it holds: ``setup <json>``, ``test <j> ok|<reason>``,
   ``bad_test <line> <message>``, ``compile syntax``, ``exit ok|<reason>``.
   Stdout and stderr are the program's own.
"""

import builtins
import contextlib
import ctypes
import json
import os
import resource
import select
import signal
import socket
import sys
import types

if __name__ == "__main__":  # run by the sandbox: the protocol's source comes as the first argument
    protocol = types.ModuleType("_sandbox_protocol")
    exec(compile(sys.argv[1], "_sandbox_protocol.py", "exec"), protocol.__dict__)  # noqa: S102
else:
    from graft.rewards import _sandbox_protocol as protocol

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 1 << 14, 1 << 18
MS_RDONLY, MS_REMOUNT = 1, 32
PR_SET_NO_NEW_PRIVS = 38
SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
NOBODY = 65534
SETUP_FAILED = 70  # exit code: isolation was asked for and could only be half done
# Imported before privileges drop, so that they work even where the interpreter's files cannot be
# made readable to the sandbox uid (no namespaces); also saves each program their import time.
PRELOAD = (
    "array", "bisect", "cmath", "collections", "copy", "dataclasses", "datetime", "decimal", "enum",
    "fractions", "functools", "heapq", "io", "itertools", "json", "math", "numbers", "operator",
    "random", "re", "statistics", "string", "textwrap", "time", "traceback", "typing", "unicodedata",
)

libc = ctypes.CDLL(None, use_errno=True)


def _mount(source, target, fstype, flags, data):
    enc = (lambda s: s.encode() if isinstance(s, str) else s)
    if libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {target}: {os.strerror(err)}")


def _drop_capabilities():
    """capset(all zero): a user-namespace 'root' keeps no power over its mounts."""
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    header, data = Header(0x20080522, 0), (Data * 2)()
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def _closed_ancestor(path):
    """The first directory above ``path`` that 'others' cannot traverse (e.g. a 0700 /root), or None."""
    parts = os.path.realpath(path).split("/")[1:]
    for i in range(1, len(parts)):
        ancestor = "/" + "/".join(parts[:i])
        if not os.stat(ancestor).st_mode & 0o001:
            return ancestor
    return None


def expose_interpreter():
    """Let the sandbox uid read this interpreter's files when they sit under a closed directory.

    A closed ancestor (say /root, mode 0700) is covered, in this mount namespace only, by an
    empty 0755 tmpfs in which just the interpreter's own directories are bind-mounted back:
    the rest of it stays out of sight.
    """
    wanted = _interpreter_dirs()
    by_ancestor = {}
    for path in wanted:
        ancestor = _closed_ancestor(path)
        if ancestor is not None:
            by_ancestor.setdefault(ancestor, set()).add(path)
    exposed = []
    for ancestor, paths in by_ancestor.items():
        exposed += _cover(ancestor, "size=64k,mode=0755", paths)
    return exposed


def _interpreter_dirs():
    """The directories this interpreter imports from (prefixes, executable's directory, sys.path)."""
    return {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, os.path.dirname(sys.executable),
                                          *sys.path) if p and os.path.isdir(p)}


def _cover(target, options, keep):
    """Mount a fresh tmpfs over ``target`` and bind the directories of ``keep`` below it back in, read-only.

    Returns the directories bound back (the outermost ones of ``keep`` under ``target``)."""
    inside = [p for p in keep if p.startswith(target.rstrip("/") + "/")]
    outer = sorted(p for p in inside if not any(p != q and p.startswith(q + "/") for q in inside))
    fds = [os.open(p, os.O_PATH | os.O_DIRECTORY) for p in outer]  # still reachable: open before covering
    _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, options)
    for path, fd in zip(outer, fds):
        os.makedirs(path, mode=0o755, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, None)
        _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None)  # read-only
        os.close(fd)
    return outer


def isolate(req, info):
    """Namespaces and private tmpfs mounts; fills ``info`` with what worked. True if in new namespaces."""
    root = os.geteuid() == 0
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    if libc.unshare(flags | (0 if root else CLONE_NEWUSER)) != 0:
        info["namespaces"] = f"unshare failed: {os.strerror(ctypes.get_errno())}"
        return False
    if not root:  # map our own uid/gid into the new user namespace
        with open("/proc/self/setgroups", "w") as fh:
            fh.write("deny")
        with open("/proc/self/uid_map", "w") as fh:
            fh.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as fh:
            fh.write(f"{gid} {gid} 1")
    info["namespaces"] = "mount,net,pid,ipc,uts" + ("" if root else ",user")
    _mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    if root:
        info["exposed"] = expose_interpreter()
    size = req["limits"]["disk_bytes"]
    interpreter = _interpreter_dirs()  # a venv may live under /tmp: keep it importable
    for path in SHARED_TMP:
        if os.path.isdir(path):
            info.setdefault("exposed", [])
            info["exposed"] += _cover(os.path.realpath(path), f"size={size},mode=1777", interpreter)
    work = req["workdir"]
    os.makedirs(work, mode=0o700, exist_ok=True)
    owner = req["uid"] if root else uid
    _mount("tmpfs", work, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=0700,uid={owner},gid={owner}")
    return True


def set_limits(lim):
    """rlimits of the runner (and everything it starts). Soft CPU limit -> SIGXCPU; hard = soft + 1."""
    cpu = max(1, int(lim["cpu_s"] + 0.999))
    for name, value in (
        ("RLIMIT_CPU", (cpu, cpu + 1)),
        ("RLIMIT_AS", (lim["memory_bytes"],) * 2),
        ("RLIMIT_FSIZE", (lim["disk_bytes"],) * 2),
        ("RLIMIT_NOFILE", (lim["nofile"],) * 2),
        ("RLIMIT_CORE", (0, 0)),
    ):
        resource.setrlimit(getattr(resource, name), value)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the file-size cap a write fails (EFBIG)


def drop_privileges(req, info):
    if os.geteuid() == 0:
        uid = req["uid"]
        os.setgroups([])
        try:
            os.setgid(uid)
            os.setuid(uid)
        except OSError:  # uid outside this machine's (container's) id map: share 'nobody'
            uid = NOBODY
            os.setgid(uid)
            os.setuid(uid)
        info["uid"] = uid
    elif info.get("namespaces", "").endswith("user"):
        _drop_capabilities()
        info["uid"] = os.getuid()
    # RLIMIT_NPROC counts every process of the real uid, so it is set after the uid change
    resource.setrlimit(resource.RLIMIT_NPROC, (req["limits"]["nproc"],) * 2)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)  # setuid binaries (su, ping, ...) gain nothing


def drop_judge_privileges(req, info):
    """The judge keeps no power it does not need: its own uid (as root), else no capabilities.

    Its uid is one no other process uses (``judge_uid``, leased with the run's); when the id map
    refuses it, the judge stays root rather than share an identity with the program.
    """
    if os.geteuid() == 0 and req.get("judge_uid") is not None:
        try:
            os.setgroups([])
            os.setgid(req["judge_uid"])
            os.setuid(req["judge_uid"])
        except OSError:
            pass
    elif info.get("namespaces", "").endswith("user"):
        _drop_capabilities()
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def run(req, info, sock):
    """The runner: limits, identity, then the program, then its calls from the judge. Never returns."""
    me = os.getpid()
    channel = protocol.Channel(sock)

    def tell(*message):
        if os.getpid() != me:  # a child the program forked fell through to here: stay silent
            os._exit(1)
        with contextlib.suppress(BaseException):  # the program may have broken sys.stdout
            sys.stdout.flush()
        channel.send(protocol.dumps(protocol.to_wire(list(message))))

    if req["mode"] == "stdio":  # the test's input as stdin: an in-memory file, nothing on disk
        fd = os.memfd_create("stdin")
        os.write(fd, req["input"].encode())
        os.lseek(fd, 0, os.SEEK_SET)
        os.dup2(fd, 0)
        os.close(fd)
    try:
        os.chdir(req["workdir"])
        set_limits(req["limits"])
        drop_privileges(req, info)
    except (OSError, ValueError) as exc:  # the host's problem, never the program's: say so
        sys.stderr.write(f"graft-sandbox-setup: {exc}\n")
        os._exit(SETUP_FAILED)
    sys.stdin = open(0, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115 - the program's
    tell("setup", info)
    main = req["mode"] == "stdio"
    try:
        code = compile(req["code"], "<solution>", "exec")
    except MemoryError:
        tell("exit" if main else "load", "memory")
        os._exit(0)
    except (SyntaxError, ValueError, OverflowError, RecursionError):
        tell("compile" if main else "load", "syntax")
        os._exit(0)
    namespace = {"__name__": "__main__" if main else "__solution__", "__builtins__": builtins}
    try:
        exec(code, namespace)  # noqa: S102 - this is the sandbox: untrusted code runs here only
    except SystemExit as exc:
        if not main or exc.code not in (None, 0):
            tell("exit" if main else "load", "runtime")
            os._exit(0)
    except BaseException as exc:  # noqa: BLE001
        tell("exit" if main else "load",
             "runtime" if main and isinstance(exc, AssertionError) else protocol.classify(exc))
        os._exit(0)
    tell("exit" if main else "load", "ok")
    if not main:
        protocol.serve_program(channel, namespace, me)
    os._exit(0)


def init(req, info, sock):
    """pid 1 of the new PID namespace: private /proc, start the runner, reap, exit with its status."""
    try:
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
        info["proc"] = "private"
    except OSError as exc:
        info["proc"] = f"host ({exc.strerror})"
    runner = os.fork()
    if runner == 0:
        try:
            run(req, info, sock)
        finally:  # the program broke the harness (say, json.dumps): end here, running nothing of its own
            os._exit(1)
    os.close(sock)
    while True:
        pid, status = os.waitpid(-1, 0)
        if pid == runner:
            os._exit(_exit_code(status))


def _exit_code(status):
    """waitpid status -> shell-style code (128 + signal when killed), passed up unchanged."""
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _read_exactly(n):
    data = b""
    while len(data) < n:
        chunk = os.read(0, n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _read_request():
    """The program's part of the request, read unbuffered so that nothing after it is in memory yet."""
    size = b""
    while not size.endswith(b"\n"):
        byte = os.read(0, 1)
        if not byte:
            raise SystemExit(SETUP_FAILED)
        size += byte
    return json.loads(_read_exactly(int(size)))


def _wait(pid, pidfd, seconds):
    """The exit code of ``pid`` if it ends within ``seconds``, else None."""
    if select.select([pidfd], [], [], seconds)[0]:
        return _exit_code(os.waitpid(pid, 0)[1])
    return None


def judge(req, info, sock, child):
    """This process after the fork: read the tests, judge, report; exit with the program's status."""
    report_fd = req["report_fd"]

    def report(line):
        os.write(report_fd, (line.replace("\n", " ") + "\n").encode())

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the tests' own prints and warnings must not mix with the program's output
    os.dup2(devnull, 2)
    os.close(devnull)
    plan = json.loads(sys.stdin.buffer.read() or b"{}").get("tests")
    memory = req["limits"]["memory_bytes"]
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    pidfd = os.pidfd_open(child)
    drop_judge_privileges(req, info)
    channel = protocol.Channel(sock.fileno(), cap=req["limits"]["output_bytes"], pidfd=pidfd)

    def expect(kind):
        """The next message of ``kind`` from the runner: its payload, or None if the runner is gone."""
        try:
            line = channel.read()
            message = protocol.from_wire(line) if line is not None else None
        except (OverflowError, ValueError, TypeError, RecursionError, MemoryError):
            return "runtime"
        if type(message) is list and len(message) == 2 and message[0] in kind:
            return message if len(kind) > 1 else message[1]
        return None if message is None else "runtime"

    setup = expect(("setup",))
    if setup is None:  # the runner died before running anything: its exit code says why
        sock.close()
        os._exit(_wait(child, pidfd, 5.0) or SETUP_FAILED)
    if isinstance(setup, dict):
        setup["judge_uid"] = os.getuid()
    report("setup " + json.dumps(setup))
    if req["mode"] == "stdio":
        ended = expect(("exit", "compile"))
        if isinstance(ended, list) and ended[1] in ("ok", "runtime", "memory", "syntax"):
            report(f"{ended[0]} {ended[1]}")
    else:
        load = expect(("load",))
        protocol.judge_tests(plan, channel, load if load in protocol.LOAD_REASONS or load is None else "runtime",
                             report)
    sock.close()
    os._exit(_wait(child, pidfd, 2.0 if channel.gone else 0.5) or 0)  # gone: its exit code says why


def main():
    req = _read_request()
    for name in PRELOAD:
        __import__(name)
    sys.stdout.reconfigure(encoding="utf-8", errors="replace")
    info = {"namespaces": "off"}
    isolated = False
    if req["isolate"]:
        try:
            isolated = isolate(req, info)
        except OSError as exc:  # half-isolated is worse than a clear failure
            sys.stderr.write(f"graft-sandbox-setup: {exc}\n")
            os._exit(SETUP_FAILED)
    ours, theirs = socket.socketpair()
    child = os.fork()
    if child == 0:  # the program's side: nothing of the judge's may stay reachable
        os.close(req["report_fd"])
        ours.close()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)  # stdin still holds the tests' plan
        os.close(null)
        sock = theirs.detach()
        try:
            if isolated:
                init(req, info, sock)
            run(req, info, sock)
        finally:  # never back into the judge's code, never the program's atexit handlers
            os._exit(1)
    theirs.close()
    try:
        judge(req, info, ours, child)
    except BaseException as exc:  # noqa: BLE001 - the judge's own failure: say so where the host reads
        message = f"judge_error {type(exc).__name__}: {exc}".replace("\n", " ")
        os.write(req["report_fd"], message.encode() + b"\n")
        os._exit(SETUP_FAILED)


if __name__ == "__main__":
    main()
