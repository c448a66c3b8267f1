"""Run untrusted Python in a subprocess sandbox; the host side (see ``_sandbox_child.py``).

One call to ``run_program`` starts ``python -I -B -c <_sandbox_child.py's source>
<_sandbox_protocol.py's source>`` (both read once, when this module is imported:
the sandbox never reads graft's files itself) in a new session with a sanitised
environment, sends it the program on stdin and then, separately, the tests'
plan (which only the judge reads), and reads three pipes with byte caps and a
wall-clock deadline: the program's stdout and stderr, and the judge's report.
Whatever happens, afterwards: the whole process group is SIGKILLed (which also
tears down the child's PID namespace, daemons included), then every process
left with the run's uid (as root) or its environment marker (otherwise) is
SIGKILLed until none is left, and the private working directory is deleted.

Layers and their fallbacks (what each protects against: docs/verifiers.md):

| layer | as root | as another user |
| --- | --- | --- |
| identity | a dedicated uid per concurrent run (``UID_BASE + slot``, leased with an abstract-socket lock, so parallel runs and parallel trainers never share one), no groups | own uid, all capabilities dropped in a user namespace |
| namespaces | mount, net, pid, ipc, uts | the same inside a new user namespace, if the kernel allows unprivileged ones; else none |
| rlimits | CPU, address space, file size, processes (per uid), open files, no core | the same; RLIMIT_NPROC then counts all the user's processes |
| files | fresh tmpfs (``disk_mb``) over the workdir, /tmp, /var/tmp, /dev/shm, /run/lock | the same with namespaces; else a private ``mkdtemp`` dir only |
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HARNESS = Path(__file__).with_name("_sandbox_child.py")
HARNESS_SOURCE = HARNESS.read_text()
PROTOCOL_SOURCE = HARNESS.with_name("_sandbox_protocol.py").read_text()
OWNER = secrets.token_hex(6)  # this process's runs: in every marker and workdir name (tests scope by it)
UID_BASE = 2_000_000_000  # far above login and systemd-dynamic uids (<= 65535)
UID_SLOTS = 4096  # program uids UID_BASE + slot; the run's judge gets UID_BASE + UID_SLOTS + slot
SETUP_FAILED = 70  # the harness's exit code when isolation was asked for and failed half-way


class SandboxError(RuntimeError):
    """The sandbox itself could not be set up (a host problem, never the program's fault)."""


@dataclass(frozen=True)
class Limits:
    """Per-run limits. Memory and disk are per process / per tmpfs: see docs/verifiers.md."""

    wall_s: float = 10.0       # wall clock of the whole run (the host kills the group)
    cpu_s: float = 5.0         # RLIMIT_CPU of the program (whole seconds, rounded up)
    memory_mb: int = 512       # RLIMIT_AS of each process
    disk_mb: int = 16          # RLIMIT_FSIZE, and the size of each private tmpfs
    nproc: int = 16            # RLIMIT_NPROC: processes + threads of the sandbox uid
    nofile: int = 64           # RLIMIT_NOFILE
    output_kb: int = 1024      # stdout bytes read before the run is stopped as output_limit
    stderr_kb: int = 64        # stderr bytes kept (more is also output_limit)

    def for_child(self) -> dict:
        return {"cpu_s": self.cpu_s, "memory_bytes": self.memory_mb << 20, "disk_bytes": self.disk_mb << 20,
                "nproc": self.nproc, "nofile": self.nofile}


@dataclass
class RunResult:
    """What one sandboxed run did.

    stopped:  None if the run ended by itself, else "timeout" or "output_limit" (the host killed it).
    stdout:   the program's output, as it wrote it (no status line is ever mixed in).
    events:   the judge's report lines after ``setup`` (e.g. "test 0 ok", "exit runtime").
    exit_code: of the sandbox's first process: the runner's (128 + signal when killed by one) when
              it ended before the judge did.
    info:     isolation actually achieved (namespaces, uid, proc), from the runner's setup message.
    """

    stopped: str | None
    stdout: str
    events: list[str]
    exit_code: int | None
    stderr: str
    seconds: float
    info: dict = field(default_factory=dict)


class _UidLease:
    """An exclusive uid for one run: an abstract unix socket named after it is the lock.

    Abstract sockets leave no file behind and vanish when their process dies, so a
    crashed trainer never leaks a slot.
    """

    def __init__(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        start = secrets.randbelow(UID_SLOTS)
        for k in range(UID_SLOTS):
            uid = UID_BASE + (start + k) % UID_SLOTS
            try:
                self.sock.bind(f"\0graft-sandbox-uid-{uid}")
            except OSError:
                continue
            self.uid = uid
            return
        self.sock.close()
        raise SandboxError(f"all {UID_SLOTS} sandbox uids are in use")

    def release(self) -> None:
        self.sock.close()


def _clean_env(workdir: str, marker: str) -> dict[str, str]:
    """The program's whole environment: nothing of the host's leaks in."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir,
        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "GRAFT_SANDBOX": marker,
    }


def _processes() -> list[tuple[int, int]]:
    """(pid, real uid) of every live process visible in /proc (zombies are dead: skipped)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/status") as fh:
                    fields = dict(line.split(":", 1) for line in fh if ":" in line)
            except OSError:
                continue
            if "Uid" in fields and fields.get("State", "").split()[:1] not in (["Z"], ["X"]):
                found.append((int(name), int(fields["Uid"].split()[0])))
    return found


def _has_marker(pid: int, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return marker in fh.read()
    except OSError:
        return False


def sweep(uids: tuple[int, ...], marker: str) -> int:
    """SIGKILL every process of ``uids`` (a run's leased uids) or carrying ``marker``; how many."""
    killed, me, tag = 0, os.getuid(), f"GRAFT_SANDBOX={marker}".encode()
    for _ in range(50):  # repeat: a fork may land between listing and killing
        targets = [pid for pid, owner in _processes()
                   if owner in uids or (owner == me and _has_marker(pid, tag))]
        if not targets:
            return killed
        for pid in targets:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        time.sleep(0.01)
    return killed


def sweep_files(uids: tuple[int, ...]) -> int:
    """Delete what ``uids`` left in the shared temporary directories (only needed without a mount namespace)."""
    removed = 0
    for top in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock"):
        try:
            entries = list(os.scandir(top))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid not in uids:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
                removed += 1
            except OSError:
                pass
    return removed


def _read_capped(proc: subprocess.Popen, pipes: dict[int, int], deadline: float):
    """Drain ``pipes`` (fd -> byte cap) until the process exits, the deadline passes or a cap is hit.

    Returns (stopped, {fd: bytes}) with stopped None, "timeout" or "output_limit" (stderr keeps its
    last bytes, the others their first). The process's exit (a pidfd) ends the wait even if an
    escaped descendant still holds the pipes.
    """
    data = {fd: bytearray() for fd in pipes}
    sel = selectors.DefaultSelector()
    for fd in pipes:
        sel.register(fd, selectors.EVENT_READ)
    pidfd = os.pidfd_open(proc.pid)
    sel.register(pidfd, selectors.EVENT_READ)
    stopped, exited = None, False
    try:
        while len(sel.get_map()) > 1:
            left = deadline - time.monotonic()
            if left <= 0 and not exited:
                stopped = "timeout"
                break
            events = sel.select(timeout=0 if exited else left)
            if exited and not any(key.fd != pidfd for key, _ in events):
                break  # exited and nothing more is waiting in the pipes
            for key, _ in events:
                if key.fd == pidfd:
                    exited = True
                    sel.unregister(pidfd)
                    continue
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fd)
                    continue
                data[key.fd] += chunk
                if len(data[key.fd]) > pipes[key.fd]:
                    stopped = "output_limit"
            if stopped:
                break
    finally:
        sel.close()
        os.close(pidfd)
    return stopped, data


def _parse(report: bytes) -> tuple[list[str], dict]:
    """The judge's report lines, and the isolation info of its ``setup`` line."""
    events, info = [], {}
    for line in report.decode("utf-8", errors="replace").splitlines():
        if line.startswith("setup "):
            try:
                parsed = json.loads(line[len("setup "):])
            except json.JSONDecodeError:
                parsed = None
            info = parsed if isinstance(parsed, dict) else {}
        elif line:
            events.append(line)
    return events, info


def run_program(request: dict, limits: Limits = Limits(), isolate: bool = True) -> RunResult:
    """Run one program in the sandbox.

    request: ``{"mode": "assert", "code": str, "tests": plan}`` (``asserts.split_tests``) or
             ``{"mode": "stdio", "code": str, "input": str}``.
    Raises SandboxError only when the sandbox itself cannot be set up.
    """
    start = time.monotonic()
    root = os.geteuid() == 0
    lease = _UidLease() if root else None
    workdir = tempfile.mkdtemp(prefix=f"graft-sandbox-{OWNER}-")
    marker = f"{OWNER}-{secrets.token_hex(8)}"
    proc, stopped, out, err, report = None, None, b"", b"", b""
    report_r, report_w = os.pipe()
    try:
        if lease is not None:
            os.chown(workdir, lease.uid, lease.uid)  # used as is when namespaces are unavailable
        program = {key: request[key] for key in ("mode", "code", "input") if key in request}
        program.update(workdir=workdir, uid=lease.uid if lease else None, isolate=isolate, report_fd=report_w,
                       judge_uid=lease.uid + UID_SLOTS if lease else None,
                       limits={**limits.for_child(), "output_bytes": limits.output_kb << 10})
        first = json.dumps(program).encode()
        payload = b"%d\n" % len(first) + first + json.dumps({"tests": request.get("tests")}).encode()
        proc = subprocess.Popen(
            [sys.executable, "-I", "-B", "-c", HARNESS_SOURCE, PROTOCOL_SOURCE], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_clean_env(workdir, marker), cwd="/",
            start_new_session=True, close_fds=True, pass_fds=(report_w,),
        )
        os.close(report_w)
        report_w = None
        try:
            proc.stdin.write(payload)
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
        stopped, data = _read_capped(proc, {out_fd: limits.output_kb << 10, err_fd: limits.stderr_kb << 10,
                                            report_r: 1 << 20}, start + limits.wall_s)
        out = bytes(data[out_fd][: limits.output_kb << 10])
        err, report = bytes(data[err_fd][-(limits.stderr_kb << 10):]), bytes(data[report_r])
    finally:
        if report_w is not None:
            os.close(report_w)
        os.close(report_r)
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the group: the judge, pid-namespace init, runner
            except ProcessLookupError:
                pass
            proc.wait()
            for stream in (proc.stdout, proc.stderr):
                stream.close()
        events, info = _parse(report)
        # A PID namespace dies with its init, but asynchronously; without one, escaped processes
        # live on. Either way: wait until no process of the run's uid (or marker) is left.
        uids = (lease.uid, lease.uid + UID_SLOTS) if lease else ()  # the program's and the judge's
        sweep(uids, marker)
        if lease is not None and "mount" not in info.get("namespaces", ""):
            sweep_files(uids)  # no private tmpfs: files written to /tmp etc. are real
        shutil.rmtree(workdir, ignore_errors=True)
        if lease is not None:
            lease.release()
    if proc.returncode == SETUP_FAILED and not info:  # before the runner said "setup": not the program
        raise SandboxError(f"sandbox setup failed: {err.decode(errors='replace').strip()[-300:]}")
    return RunResult(stopped, out.decode("utf-8", errors="replace"), events, proc.returncode,
                     err.decode("utf-8", errors="replace"), time.monotonic() - start, info)
