"""Sandbox leftovers, scoped to the runs this test process started.

Another test suite may run sandboxes on the same machine at the same time, so the checks never
scan for "any sandbox": a process is ours when its environment carries this process's marker
(``GRAFT_SANDBOX=<sandbox.OWNER>-...``), or when it runs as a uid one of our runs leased and
carries no other owner's marker (a program may wipe its environment; uids are recorded as they
are leased, from the moment this module is imported). Files: workdirs named after our owner, and
files of our uids in the shared temporary directories.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from graft.rewards import sandbox

LEASED: set[int] = set()
_lease = sandbox._UidLease.__init__


def _recording_lease(self):
    _lease(self)
    LEASED.update({self.uid, self.uid + sandbox.UID_SLOTS})


if sandbox._UidLease.__init__ is _lease:
    sandbox._UidLease.__init__ = _recording_lease


def leftover_processes(owner: str = sandbox.OWNER, uids: set[int] | None = None) -> list[int]:
    """Live processes of our sandbox runs (``owner``: a sandbox.OWNER, ours by default)."""
    uids = LEASED if uids is None else uids
    ours, found = f"GRAFT_SANDBOX={owner}-".encode(), []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            status = Path(f"/proc/{name}/status").read_text()
            if "\nState:\tZ" in status:  # a zombie is dead, waiting for its parent to reap it
                continue
            uid = int(next(ln for ln in status.splitlines() if ln.startswith("Uid:")).split()[1])
            environ = Path(f"/proc/{name}/environ").read_bytes()
        except (OSError, StopIteration):
            continue
        someone_else = b"GRAFT_SANDBOX=" in environ and ours not in environ
        if ours in environ or (uid in uids and not someone_else):
            found.append(int(name))
    return found


def leftover_files(owner: str = sandbox.OWNER) -> list[str]:
    """Our runs' workdirs, and files of our uids, in the shared temporary directories."""
    found = []
    for top in ("/tmp", "/var/tmp", "/dev/shm", tempfile.gettempdir()):
        try:
            entries = list(os.scandir(top))
        except OSError:
            continue
        for entry in entries:
            try:
                uid = entry.stat(follow_symlinks=False).st_uid
            except OSError:
                continue
            if uid in LEASED or entry.name.startswith(f"graft-sandbox-{owner}-"):
                found.append(entry.path)
    return found
