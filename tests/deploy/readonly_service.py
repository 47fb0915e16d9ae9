"""``python -m tests.deploy.readonly_service``: the service, with every write that Python makes
outside the temporary directory (``tempfile.gettempdir()``, standing for the pod's emptyDir at
/tmp) refused as a read-only root filesystem would refuse it, and reported on stderr.

A test cannot mount the root read-only, and as root (as CI runs) file modes stop nothing; an
audit hook (PEP 578) sees every ``open`` for writing, ``mkdir``, ``rename``, ``remove`` and the
like that the interpreter, the service and its libraries' Python code make. Writes that C
libraries make on their own are out of its sight; the container smoke test
(``.ci/container-smoke``) runs the real image on a read-only root for those.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any

REPORT = "loss-service-test: write outside the declared volumes:"

# The emptyDir, and devices (/dev/null, /dev/shm), which a read-only root leaves writable.
ALLOWED = (os.path.realpath(tempfile.gettempdir()), "/dev")

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

# Audit events that change the filesystem, and which of their arguments are paths.
_PATH_EVENTS = {
    "os.mkdir": (0,),
    "os.rmdir": (0,),
    "os.remove": (0,),
    "os.rename": (0, 1),
    "os.replace": (0, 1),
    "os.symlink": (1,),
    "os.link": (1,),
    "os.truncate": (0,),
    "os.chmod": (0,),
    "os.chown": (0,),
    "os.utime": (0,),
    "os.mkfifo": (0,),
    "os.mknod": (0,),
    "shutil.rmtree": (0,),
    "shutil.copyfile": (1,),
    "shutil.copymode": (1,),
    "shutil.copystat": (1,),
    "shutil.move": (1,),
}


def _outside(path: Any) -> str | None:
    """The absolute form of ``path`` if it lies outside the allowed places, else None (file
    descriptors, already opened, are not paths)."""
    if isinstance(path, int):
        return None
    try:
        text = os.fsdecode(path)
    except TypeError:
        return None
    full = os.path.realpath(text)
    if any(full == place or full.startswith(place + os.sep) for place in ALLOWED):
        return None
    return full


def _hook(event: str, args: tuple[Any, ...]) -> None:
    paths: tuple[Any, ...] = ()
    if event == "open":
        path, mode, flags = args
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS
        )
        if writing:
            paths = (path,)
    elif event in _PATH_EVENTS:
        paths = tuple(args[i] for i in _PATH_EVENTS[event] if i < len(args))
    for path in paths:
        full = _outside(path)
        if full is not None:
            sys.stderr.write(f"{REPORT} {event} {full}\n")
            raise PermissionError(30, "Read-only file system", full)  # EROFS


def main() -> int:
    sys.addaudithook(_hook)
    from service.cli import main as serve

    return serve()


if __name__ == "__main__":
    raise SystemExit(main())
