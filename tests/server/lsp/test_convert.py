"""The path a prompt shows for a document: relative to its workspace folder, never the user's directories."""

from __future__ import annotations

from types import SimpleNamespace

from lsprotocol import types as t

from diffusion_copilot.server.context.paths import shown_path
from diffusion_copilot.server.lsp.convert import workspace_roots


def test_a_file_in_a_workspace_folder_is_shown_relative_to_the_innermost_one():
    roots = ["/home/ada/work/app", "/home/ada/work/app/vendor/lib/"]
    assert shown_path("/home/ada/work/app/src/main.py", roots) == "src/main.py"
    assert shown_path("/home/ada/work/app/vendor/lib/util.py", roots) == "util.py"


def test_a_file_outside_every_folder_is_shown_by_its_name_and_other_documents_by_their_uri():
    assert shown_path("/home/ada/notes/scratch.py", ["/home/ada/work/app"]) == "scratch.py"
    assert shown_path("/home/ada/work/application/x.py", ["/home/ada/work/app"]) == "x.py"  # not a prefix folder
    assert shown_path("/tmp/a.py") == "a.py"
    assert shown_path("src/a.py") == "src/a.py"  # a relative path (the HTTP API's, the CLI's) is shown as given
    assert shown_path("untitled:Untitled-1", ["/home/ada"]) == "untitled:Untitled-1"


def test_roots_come_from_the_workspace_folders_and_root():
    workspace = SimpleNamespace(
        folders={"app": t.WorkspaceFolder(uri="file:///home/ada/my%20app", name="app")}, root_path="/srv/repo"
    )
    assert workspace_roots(workspace) == ["/home/ada/my app", "/srv/repo"]
    assert workspace_roots(SimpleNamespace(folders={}, root_path=None)) == []
