"""Files that processes and machines sharing a folder write safely.

:func:`atomic_write` puts a file in place through a temporary one renamed over it (atomic on
POSIX). Temporary files are named ``.<file>.<host>.<pid>.<random>.tmp``, with :data:`HOST`
naming this machine and PID namespace, so that a reader on any machine can tell whether the
writer of a leftover temporary may still run (:func:`parse_temporary`, :func:`pid_alive`).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import socket
from pathlib import Path


def host_tag() -> str:
    """This machine and PID namespace, as a file-name-safe tag: the host name plus a
    short hash of the kernel's boot id and the PID namespace, so that two containers
    with one host name, or a rebooted machine, do not take each other's process ids
    for their own."""
    name = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname() or "host")[:32] or "host"
    ident = []
    for path in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        try:
            ident.append(os.readlink(path) if path.endswith("/pid") else Path(path).read_text())
        except OSError:
            ident.append("")
    return f"{name}-{hashlib.sha256('|'.join(ident).encode()).hexdigest()[:8]}"


HOST = host_tag()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed into place.

    The temporary file is created with mode ``0o666`` minus the umask (as ``open`` does),
    and named by this host and process so that :meth:`ResultsStore.remove_stale_temporaries`
    on any machine sharing the store can tell whether its writer may still be alive."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def parse_temporary(name: str) -> tuple[str, int] | None:
    """``(host, pid)`` of a temporary file's name, None for another format."""
    parts = name.rsplit(".", 4)  # ['.<file>', host, pid, random, 'tmp']
    if len(parts) != 5 or parts[4] != "tmp" or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2])


def pid_alive(pid: int) -> bool | None:
    """Whether process ``pid`` of this host runs (None: cannot tell). A zombie -- a process
    that ended (e.g. killed) but that its parent has not reaped yet -- does not run."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError, ValueError, TypeError):
        return None  # alive under another user, or not a process id here
    try:  # Linux: the state field of /proc/<pid>/stat, after the parenthesised command
        state = Path(f"/proc/{int(pid)}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")
