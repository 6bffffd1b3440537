"""/v1/code/edits: next-edit suggestions over HTTP. The body of /v1/code/completions with `recent_edits` as changes
(the text of a region before and after the edit); the answer is minimal edits, usually none. Built by the same
functions as the language server's next-edit feature (completion/next_edit.py); no engine I/O here but the gate's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from diffusion_copilot.engine.prompt.edit import EDIT_CANVAS_TOKENS, Window, compact_diff, edit_window, window_chars
from diffusion_copilot.engine.protocol import RunReply

from ..completion.inline import CursorRequest
from ..completion.next_edit import EditRequest, edit_run_request, suggested_edits
from ..context.languages import language_for_path
from ..context.positions import offset_at, units_between
from ..settings import Settings
from .completion import ApiLimits, Planned, bad_request, budget_seconds, timings
from .models import MAX_FILES, CodeCompletionRequest, Position, Range, Timings


class RecentChangeIn(BaseModel):
    """One recent edit: a region's text before and after it (a few lines around the change are enough)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    path: str = Field(default="", max_length=4096, description="the file it was made in; empty: this document")
    before: str
    after: str


class CodeEditRequest(CodeCompletionRequest):
    """A document after the recent edits, the cursor, and the recent edits; `n` and `stream` do not apply (one
    rewrite, answered whole)."""

    recent_edits: list[RecentChangeIn] = Field(  # type: ignore[assignment]
        default_factory=list, max_length=MAX_FILES, description="recent edits, oldest first")
    stream: StrictBool = Field(default=False, description="edits are answered whole: false",
                               json_schema_extra={"const": False})

    @field_validator("stream")
    @classmethod
    def answered_whole(cls, stream: bool) -> bool:
        if stream:
            raise ValueError("edits are answered whole: stream must be false")
        return stream


class CodeEdit(BaseModel):
    text: str = Field(description="replaces the text at `range`")
    range: Range


class CodeEditResponse(BaseModel):
    id: str
    model: str | None
    model_has_random_weights: bool | None
    edits: list[CodeEdit] = Field(description="minimal edits to apply; empty when nothing should change")
    timings: Timings | None = Field(description="null when the engine was not asked (no recent edit)")


@dataclass(frozen=True)
class PlannedEdit:
    """A /v1/code/edits body resolved: the next-edit request, its window, and the job as the gate runs it."""

    request: EditRequest
    window: Window
    planned: Planned


def recent_diff(body: CodeEditRequest) -> str:
    """The recent edits as one compact diff, each change's hunks after its file's name when it is another file."""
    parts = []
    for change in body.recent_edits:
        diff = compact_diff(change.before, change.after)
        if diff:
            parts.append(diff if change.path in ("", body.path) else f"# {change.path}\n{diff}")
    return "".join(parts)


def plan_edit(body: CodeEditRequest, settings: Settings, limits: ApiLimits, chars_per_token: float | None
              ) -> PlannedEdit:
    """The edit job for a body; 400 for a position outside the text."""
    text = body.text
    offset = offset_at(text, body.position.line, body.position.character, body.position_encoding)
    if offset is None:
        raise bad_request(f"position.line {body.position.line} is outside the text", "position")
    language = body.language or language_for_path(body.path)
    request = EditRequest(uri=body.path, path=body.path, language=language, text=text, cursor_offset=offset,
                          recent_diff=recent_diff(body), invoked=True)
    window = edit_window(text, offset, window_chars(EDIT_CANVAS_TOKENS, chars_per_token))
    wanted = Settings(max_steps=body.max_steps or settings.max_steps,
                      seed=body.seed if body.seed is not None else settings.seed)
    budget_s = budget_seconds(body.time_budget_ms, limits)
    run = replace(edit_run_request(request, window, wanted), time_budget_s=budget_s)
    cursor = CursorRequest(uri=body.path, path=body.path, language=language, prefix=text[:offset],
                           suffix=text[offset:], cursor_offset=offset, invoked=True)
    position = Position(line=body.position.line, character=body.position.character)
    return PlannedEdit(request, window, Planned(cursor, run, position, "edit", budget_s,
                                                       settings.next_edit_min_confidence))


def edit_response(planned: PlannedEdit, reply: RunReply | None, model: str | None, random_weights: bool | None,
                  received: float, encoding: str) -> CodeEditResponse:
    """The response body: the gated minimal edits, their ranges in the request's position encoding."""
    text = planned.request.text
    edits = () if reply is None else suggested_edits(planned.request, planned.window, reply,
                                                     0.0 if random_weights else planned.planned.min_confidence)

    def position(offset: int) -> Position:
        start = text.rfind("\n", 0, offset) + 1
        return Position(line=text.count("\n", 0, offset), character=units_between(text, start, offset, encoding))

    return CodeEditResponse(
        id=f"edit-{uuid.uuid4().hex[:16]}", model=model, model_has_random_weights=random_weights,
        edits=[CodeEdit(text=e.text, range=Range(start=position(e.start), end=position(e.end))) for e in edits],
        timings=None if reply is None else timings(reply, received))
