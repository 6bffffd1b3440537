"""The OpenAI completions dialect of the HTTP API: prompt and stop arguments in, `text_completion` bodies and
stream chunks out. The engine's canvases are returned as they are (healed characters stripped, stop sequences
applied): clients of this dialect do their own post-processing.
"""

from __future__ import annotations

from collections.abc import Iterator

from diffusion_copilot.engine.protocol import RunCanvas, RunReply

from .completion import bad_request
from .models import MAX_STOPS, OpenAIChoice, OpenAICompletionResponse, Usage
from .stream import sse_data


def split_prompt(prompt: str | list[str]) -> str:
    """The one prompt of a request (a list must hold exactly one string)."""
    if isinstance(prompt, str):
        return prompt
    if len(prompt) != 1:
        raise bad_request(f"prompt: a list must hold exactly one string (got {len(prompt)}); send one request "
                          "per prompt", "prompt")
    return prompt[0]


def stop_list(stop: str | list[str] | None) -> tuple[str, ...]:
    """The stop sequences, checked."""
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > MAX_STOPS:
        raise bad_request(f"stop: at most {MAX_STOPS} sequences (got {len(stops)})", "stop")
    return tuple(s for s in stops if s)  # an empty sequence would stop before the first character: ignored


def choice_text(canvas: RunCanvas, stops: tuple[str, ...]) -> tuple[str, str]:
    """(text, finish_reason) of one canvas: cut at the first stop sequence."""
    text = canvas.completion or ""
    cuts = [at for at in (text.find(s) for s in stops) if at >= 0]
    if cuts:
        return text[: min(cuts)], "stop"
    return text, "stop" if canvas.hit_eos else "length"


def choices(reply: RunReply, stops: tuple[str, ...], echo: str) -> list[OpenAIChoice]:
    out = []
    for index, canvas in enumerate(reply.canvases):
        text, reason = choice_text(canvas, stops)
        out.append(OpenAIChoice(text=echo + text, index=index, finish_reason=reason))  # type: ignore[arg-type]
    return out


def openai_response(completion_id: str, created: int, model: str, reply: RunReply, stops: tuple[str, ...],
                    echo: str) -> OpenAICompletionResponse:
    tokens = sum(len(c.confidence) for c in reply.canvases)
    return OpenAICompletionResponse(id=completion_id, created=created, model=model,
                                    choices=choices(reply, stops, echo),
                                    usage=Usage(prompt_tokens=0, completion_tokens=tokens, total_tokens=tokens))


def openai_chunks(completion_id: str, created: int, model: str, reply: RunReply, stops: tuple[str, ...],
                  echo: str) -> Iterator[bytes]:
    """The stream of a finished reply: each choice's text, then its finish reason, then [DONE]. Text is sent once
    the canvas is final, since this dialect cannot take back text already sent."""
    head = {"id": completion_id, "object": "text_completion", "created": created, "model": model}
    for choice in choices(reply, stops, echo):
        yield sse_data({**head, "choices": [{"text": choice.text, "index": choice.index, "logprobs": None,
                                             "finish_reason": None}]})
        yield sse_data({**head, "choices": [{"text": "", "index": choice.index, "logprobs": None,
                                             "finish_reason": choice.finish_reason}]})
    yield sse_data("[DONE]")
