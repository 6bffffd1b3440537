"""The HTTP API's request and response bodies (docs/api.md), as pydantic models: the only module besides
app.py that knows their shape. Limits here are what the OpenAPI schema documents; a body outside them is a 400.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..valid_text import valid_json

MAX_ALTERNATIVES = 8
MAX_CANVAS = 256
MAX_STEPS = 512
MAX_FILES = 64
MAX_STOPS = 4
# The largest seed: 2**53 - 1 is the largest integer a JSON number holds exactly, so a client or schema validator
# that reads numbers as doubles agrees with the server on which seeds are valid (2**63 - 1 read as a double is 2**63,
# which made 2**63 + 191 schema-valid but a 400).
MAX_SEED = 2**53 - 1


def integral(value: Any) -> Any:
    """1.0 as 1: JSON Schema's `integer` (what the OpenAPI schema says) includes integral numbers written with a
    fraction, which clients that compute a count as a float send. 1.5, true and "1" stay errors."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class ErrorDetail(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error, authentication_error, rate_limit_error, "
                                  "engine_unavailable or engine_error")
    code: str | None = None
    param: str | None = None


class ErrorResponse(BaseModel):
    """Every non-2xx answer, in the OpenAI error shape."""

    error: ErrorDetail


class RequestBody(BaseModel):
    """A request body: every string in it is made valid text (valid_text.py) before it is validated, so a lone
    surrogate (`"\\ud800"`, valid JSON) reaches the completion flow as U+FFFD."""

    @model_validator(mode="before")
    @classmethod
    def valid_strings(cls, data: Any) -> Any:
        return valid_json(data)


# /v1/code/completions


class Position(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    line: int = Field(ge=0, le=10_000_000, description="0-based line")
    character: int = Field(ge=0, le=10_000_000, description="0-based, in code units of position_encoding")

    integral_numbers = field_validator("line", "character", mode="before")(integral)


class Range(BaseModel):
    start: Position
    end: Position


class OtherFile(BaseModel):
    """Another file of the project, given by content: the server never opens paths named in a request."""

    model_config = ConfigDict(extra="forbid", strict=True)
    path: str = Field(max_length=4096)
    text: str
    language: str | None = Field(default=None, max_length=64)


class RecentEditIn(BaseModel):
    """A snippet around a recent edit (in any file)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    path: str = Field(max_length=4096)
    text: str


class CodeCompletionRequest(RequestBody):
    """A document and a cursor, as an editor would send them."""

    model_config = ConfigDict(extra="forbid", strict=True)
    text: str = Field(description="the whole document")
    position: Position
    position_encoding: Literal["utf-16", "utf-8", "utf-32"] = "utf-16"
    language: str | None = Field(default=None, max_length=64,
                                 description="language id; null: from the path's extension, else plaintext")
    path: str = Field(default="untitled", max_length=4096, description="a label for the prompt; never opened")
    other_files: list[OtherFile] = Field(default_factory=list, max_length=MAX_FILES)
    recent_edits: list[RecentEditIn] = Field(default_factory=list, max_length=MAX_FILES)
    n: int = Field(default=1, ge=1, le=MAX_ALTERNATIVES, description="alternatives, from one batched engine job")
    max_steps: int | None = Field(default=None, ge=1, le=MAX_STEPS, description="null: the server's setting")
    canvas_length: int | None = Field(default=None, ge=4, le=MAX_CANVAS, description="null: the server's setting")
    time_budget_ms: int | None = Field(default=None, ge=50, le=600_000,
                                       description="wall-clock budget; capped by the server's --time-budget-ms")
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    min_acceptance: float | None = Field(default=None, ge=0, le=1,
                                         description="leave out items whose predicted acceptance (the model's gate) "
                                                     "is below this; null: every item (a model without a gate: "
                                                     "every item always)")

    integral_numbers = field_validator(
        "n", "max_steps", "canvas_length", "time_budget_ms", "seed", mode="before"
    )(integral)
    stream: bool = Field(default=False, description="server-sent events: draft, line, then final")


class Timings(BaseModel):
    queue_ms: float = Field(description="waiting for the engine")
    encode_ms: float
    prefill_ms: float
    engine_ms: float = Field(description="the engine's time for the job")
    total_ms: float = Field(description="from the request received to the answer ready")
    steps: int


class CodeCompletionItem(BaseModel):
    text: str = Field(description="text to insert at `range` (it may span lines)")
    range: Range
    confidence: float = Field(description="mean probability of the completion's tokens")
    acceptance: float | None = Field(default=None, description="predicted probability that the completion is "
                                                               "accepted (the model's gate); null without a gate")
    finish_reason: str
    steps: int


class CodeCompletionResponse(BaseModel):
    id: str
    model: str | None
    model_has_random_weights: bool | None
    mode: Literal["line", "lines", "body"] = Field(description="the completion mode at the cursor")
    items: list[CodeCompletionItem]
    finish_reason: str
    timings: Timings


# /v1/completions (OpenAI dialect)


class OpenAICompletionRequest(RequestBody):
    """OpenAI's legacy completions body. Fields that do not apply to a diffusion model are accepted and ignored
    (docs/api.md lists them), so clients written for that dialect work unchanged."""

    model_config = ConfigDict(extra="allow", strict=True)
    model: str | None = None
    prompt: str | Annotated[list[str], Field(min_length=1, max_length=1)] = Field(
        description="the text before the cursor; a list must hold exactly one string")
    suffix: str | None = Field(default=None, description="the text after the cursor (fill in the middle)")
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_CANVAS, description="the canvas length")
    n: int = Field(default=1, ge=1, le=MAX_ALTERNATIVES)
    stop: str | Annotated[list[str], Field(max_length=MAX_STOPS)] | None = Field(
        default=None, description=f"up to {MAX_STOPS} stop sequences")
    stream: bool = False
    echo: bool = False
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    temperature: float | None = Field(default=None, description="ignored: the sampler follows its own schedule")
    top_p: float | None = Field(default=None, description="ignored")
    best_of: int | None = Field(default=None, description="ignored")
    logprobs: int | None = Field(default=None, description="ignored (logprobs is always null)")
    presence_penalty: float | None = Field(default=None, description="ignored")
    frequency_penalty: float | None = Field(default=None, description="ignored")
    user: str | None = Field(default=None, description="ignored")

    integral_numbers = field_validator("max_tokens", "n", "seed", "best_of", "logprobs", mode="before")(integral)


class OpenAIChoice(BaseModel):
    text: str
    index: int
    logprobs: None = None
    finish_reason: Literal["stop", "length"] | None


class Usage(BaseModel):
    prompt_tokens: int = Field(description="0: the engine does not report it")
    completion_tokens: int
    total_tokens: int


class OpenAICompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[OpenAIChoice]
    usage: Usage | None = None


# health and models


class Health(BaseModel):
    status: Literal["ok", "loading", "error"]
    engine: str = Field(description="loading, ready, busy or error")
    message: str
    model: str | None
    model_has_random_weights: bool | None
    kernels: str | None = Field(description="which kernels run the model, and why a faster one does not")
    in_flight: int


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "diffusion-copilot"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
