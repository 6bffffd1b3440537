"""The path a prompt shows for a file: relative to the workspace folder that holds it, else the file's name, so that
neither the user's directories nor the folder a project sits in reach the model (it was trained on project-relative
paths, and completions must not change when a project moves)."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable


def shown_path(path: str, roots: Iterable[str] = ()) -> str:
    """`path` relative to the innermost of `roots` that holds it, else its file name; a relative path, or a document
    that is no file (its uri), stays as it is."""
    if not path.startswith("/"):
        return path
    holding = [root.rstrip("/") for root in roots if root and path.startswith(root.rstrip("/") + "/")]
    if not holding:
        return posixpath.basename(path)
    return path[len(max(holding, key=len)) + 1 :]
