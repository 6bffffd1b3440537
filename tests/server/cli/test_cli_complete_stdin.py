"""`diffusion-copilot complete --stdin`: the text on standard input, named by FILE, never opened."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SOURCE = 'def greet(name: str) -> str:\n    """Say hello."""\n    return "hello " + name\n'


def complete(*args: str, stdin: bytes, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "diffusion_copilot.server.cli", "complete", *args],
                          input=stdin, capture_output=True, timeout=300, cwd=cwd)


def test_stdin_gives_the_same_completion_as_the_file(tmp_path: Path, tiny_checkpoint: Path) -> None:
    (tmp_path / "greet.py").write_text(SOURCE)
    common = ["--model", str(tiny_checkpoint), "--json", "--steps", "3", "--seed", "4", "-n", "2"]
    from_file = complete("greet.py:3:5", *common, stdin=b"", cwd=tmp_path)
    # The name given with --stdin is not opened: where this runs, it does not even exist.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    from_stdin = complete("--stdin", "greet.py:3:5", *common, stdin=SOURCE.encode(), cwd=elsewhere)
    assert from_file.returncode == 0 and from_stdin.returncode == 0, from_stdin.stderr
    a, b = json.loads(from_file.stdout), json.loads(from_stdin.stdout)
    assert b["file"] == "greet.py"
    assert a["items"] and [i["text"] for i in a["items"]] == [i["text"] for i in b["items"]]


def test_bad_stdin_is_refused_with_one_line(tmp_path: Path) -> None:
    for data, message in ((b"", b"empty"), (b"x\x00y", b"binary"), (b"caf\xe9", b"not UTF-8")):
        done = complete("--stdin", "a.py:1:1", stdin=data, cwd=tmp_path)
        assert done.returncode == 2 and message in done.stderr and b"Traceback" not in done.stderr
    done = complete("--stdin", "a.py:9:1", stdin=b"x = 1\n", cwd=tmp_path)
    assert done.returncode == 2 and b"a.py: line 9 is out of range" in done.stderr
    done = complete("--", "-:9:1", stdin=b"x = 1\n", cwd=tmp_path)  # FILE '-' reads standard input too
    assert done.returncode == 2 and b"-: line 9 is out of range" in done.stderr
