"""Schemathesis hooks for tests/server/api/test_api_schema.py: a code completion body's cursor is moved into its text.

The schema cannot say that `position.line` must be a line of `text`; a cursor outside the text is a 400 by design
(docs/api.md). Moving it in keeps positive_data_acceptance meaningful: any other 400 for a schema-valid body fails.
Only a well-typed cursor past the end is moved, so a body made invalid on purpose stays invalid.
"""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    body = case.body
    if not (isinstance(body, dict) and isinstance(body.get("text"), str) and isinstance(body.get("position"), dict)):
        return case
    line = body["position"].get("line")
    if isinstance(line, int) and not isinstance(line, bool):
        lines = body["text"].count("\n") + 1  # lines end at \n (server/context/positions.py)
        if line >= lines:
            case.body = {**body, "position": {**body["position"], "line": lines - 1}}
    return case
