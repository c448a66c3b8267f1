"""A pool of persistent worker processes with a hard time limit per call.

Why processes: a verifier such as math-verify can spend unbounded time inside
sympy's C-level arithmetic (``9^9^9^9``), where no Python-level check runs; its
own timeout uses ``SIGALRM``, which only works in the main thread of the main
interpreter. A call that overruns here kills its worker (SIGKILL) and starts a
replacement, so the caller gets an answer within ``timeout`` seconds from any
thread, and a crashed or hung worker never takes the caller down.

Protocol: a worker is ``python -m <module>`` whose ``serve()`` reads one JSON
request per line on stdin and writes one JSON reply per line on stdout, after
first writing a ``ready`` line (imports happen before it, so the per-call clock
does not include them). Workers exit when stdin closes and ask the kernel to
kill them if the parent dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

_READY = "ready"
_START_TIMEOUT = 120.0  # seconds a fresh worker may take to import its libraries


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent exits (PR_SET_PDEATHSIG = 1)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)
        except (OSError, AttributeError):
            pass


def serve(handle: Callable[[dict], dict], memory_bytes: int | None = None) -> None:
    """Worker main loop: ``handle(request) -> reply`` for each JSON line until stdin closes."""
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)
    if memory_bytes:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    out = sys.stdout
    out.write(_READY + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            reply = handle(json.loads(line))
        except MemoryError:
            reply = {"error": "memory"}
        except Exception as exc:  # noqa: BLE001 - a bad input must not kill the worker
            reply = {"error": "runtime", "detail": f"{type(exc).__name__}: {exc}"[:200]}
        out.write(json.dumps(reply) + "\n")
        out.flush()


class _Worker:
    def __init__(self, module: str):
        # graft itself must be importable there even when the caller found it through sys.path edits
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, bufsize=0, close_fds=True, env=env,
        )
        self.ready = False
        self.dead = False  # its stdout closed: it exited or was killed by a limit
        self._buf = b""

    def _readline(self, deadline: float) -> str | None:
        """One line from the worker, or None if none arrives before ``deadline`` (or it died)."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                self.dead = True
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode() + "\n"

    def call(self, request: dict, timeout: float) -> dict | None:
        if not self.ready:
            if self._readline(time.monotonic() + _START_TIMEOUT) != _READY + "\n":
                return None
            self.ready = True
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
        except (BrokenPipeError, OSError):
            return None
        line = self._readline(time.monotonic() + timeout)
        return json.loads(line) if line else None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


def _shutdown(idle: queue.SimpleQueue, everyone: list) -> None:
    for worker in everyone:
        worker.kill()


class TimedPool:
    """``workers`` processes running ``python -m module``; ``call`` is thread-safe.

    ``call(request, timeout)`` returns the worker's reply dict, or
    ``{"error": "timeout"}`` when none came within ``timeout`` seconds (the
    worker is then killed and replaced), or ``{"error": "runtime"}`` when the
    worker died (crash, killed by a limit). Workers start lazily.
    """

    def __init__(self, module: str, workers: int = 1):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.module = module
        self.workers = workers
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self._started = False
        self._finalizer = weakref.finalize(self, _shutdown, self._idle, self._all)

    def _start(self) -> None:
        with self._lock:
            if not self._started:
                for _ in range(self.workers):
                    self._put(_Worker(self.module))
                self._started = True

    def _put(self, worker: _Worker) -> None:
        self._all.append(worker)
        self._idle.put(worker)

    def call(self, request: dict, timeout: float) -> dict:
        self._start()
        worker = self._idle.get()
        reply, died = None, False
        try:
            reply = worker.call(request, timeout)
        finally:
            if reply is None:  # overran or died: replace it (the new one imports in the background)
                died = worker.dead or worker.proc.poll() is not None
                worker.kill()
                with self._lock:
                    self._all.remove(worker)
                    self._put(_Worker(self.module))
            else:
                self._idle.put(worker)
        if reply is None:
            return {"error": "runtime" if died else "timeout"}
        return reply

    def close(self) -> None:
        """Stop every worker now (also done when the pool is garbage-collected or at exit)."""
        self._finalizer()
