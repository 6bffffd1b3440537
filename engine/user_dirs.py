"""The project's folder in the user cache directory, and private (owner-only) folders and files: every folder
the project makes for sockets, locks, logs, models and compiled code is 0700, every such file 0600.

A folder or file of the user's that is looser is tightened; one owned by someone else is left as it is.
Imports no torch: the language server uses it too.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def cache_dir() -> Path:
    """The user cache directory of the project ($XDG_CACHE_HOME/diffusion-copilot)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "diffusion-copilot"


def private_dir(path: Path, top: Path | None = None) -> Path:
    """`path`, created with its missing parents as 0700; it and the folders between it and `top` (one of its
    parents; default `path` alone) are tightened to 0700 where they are looser."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)  # the umask can only take bits away
    top = top if top is not None and path.is_relative_to(top) else path
    for folder in (path, *path.parents):
        _tighten(os.stat(folder), folder, PRIVATE_DIR_MODE)
        if folder == top:
            break
    return path


def open_private(path: Path, flags: int) -> int:
    """A descriptor of `path` opened with `flags` (os.O_*), created 0600; an existing file is tightened to 0600."""
    fd = os.open(path, flags | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        _tighten(os.fstat(fd), path, PRIVATE_FILE_MODE, fd)
    except OSError:
        os.close(fd)
        raise
    return fd


def _tighten(info: os.stat_result, path: Path, mode: int, fd: int | None = None) -> None:
    loose = stat.S_IMODE(info.st_mode) & ~mode
    if loose and info.st_uid == os.getuid():
        tight = stat.S_IMODE(info.st_mode) & mode
        if fd is None:
            os.chmod(path, tight)
        else:
            os.fchmod(fd, tight)
