"""The HTTP API's planning puts what a request carries besides its text (other files, recent edits) into the
prompt through the language server's own context stage."""

from __future__ import annotations

from diffusion_copilot.server.api.completion import ApiLimits, plan_code
from diffusion_copilot.server.api.models import CodeCompletionRequest
from diffusion_copilot.server.settings import Settings

APP = "from pkg.util import parse_header\n\n\ndef main(raw):\n    headers = parse_header(raw)\n    return "
UTIL = 'def parse_header(line: str, strict: bool = False) -> dict:\n    """Split one header line."""\n    return {}\n'


def test_other_files_and_recent_edits_reach_the_prompt() -> None:
    body = CodeCompletionRequest.model_validate(
        {
            "text": APP,
            "position": {"line": 5, "character": 11},
            "path": "app.py",
            "other_files": [{"path": "pkg/util.py", "text": UTIL}],
            "recent_edits": [{"path": "pkg/cli.py", "text": "headers = parse_header(raw, strict=True)"}],
        }
    )
    context = plan_code(body, Settings(), ApiLimits(), pin_healed=False).cursor.context
    assert context is not None
    assert "def parse_header(line: str, strict: bool = False) -> dict:" in context.prompt.context
    assert "parse_header(raw, strict=True)" in context.prompt.context
