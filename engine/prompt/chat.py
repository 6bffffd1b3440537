"""The chat-template prompt layout for instruction-tuned checkpoints (google/diffusiongemma-26B-A4B-it), which have
no prefix/suffix tokens, and the choice between it and the embedded model's layout (layout.py) for a tokenizer.

Layout (Gemma 4 turns; the empty thought channel goes before the canvas, as vLLM's diffusion strategy does):
    <bos><|turn>user\n{instruction}{context}```{language}\n{prefix}<CURSOR>{suffix}\n```<turn|>\n
    <|turn>model\n<|channel>thought\n<channel|>```{language}\n{cursor line up to the cursor}
The canvas continues the cursor line; the reply's closing fence ends it. Token healing as in layout.py: the last
token of the cursor line is left out of the prompt and returned as `healed`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .budget import prompt_token_limit
from .layout import BOS, PREFIX, EncodedPrompt, PromptParts, encode_prompt

TURN_OPEN, TURN_CLOSE = "<|turn>", "<turn|>"
EMPTY_THOUGHT = "<|channel>thought\n<channel|>"
CURSOR = "<CURSOR>"
FENCE = "```"


@dataclass(frozen=True)
class PromptLayout:
    """How one family of checkpoints is prompted: the encoder and the stops its replies need."""

    name: str
    encode: Callable[[Any, PromptParts, int], EncodedPrompt]  # (tokenizer, parts, max_tokens)
    stop_sequences: tuple[str, ...] = ()  # text that ends a completion, beyond the special tokens


def chat_sections(parts: PromptParts) -> tuple[str, str]:
    """The instruction that opens the user turn, and the block of cross-file context ("" without context)."""
    intro = (
        f"Complete the code at {CURSOR} in the {parts.language} file `{parts.path}`. Reply with only the code "
        f"that goes at {CURSOR}, in one code block that starts with the line the cursor is on.\n\n"
    )
    if not parts.context:
        return intro, ""
    return intro, f"Definitions from other files:\n{FENCE}{parts.language}\n{parts.context}{FENCE}\n\n"


def encode_chat_prompt(
    tokenizer: Any, parts: PromptParts, max_tokens: int = 2048, suffix_share: float = 0.25
) -> EncodedPrompt:
    """Token ids of the chat layout, cut to `max_tokens` (prefix from the left, suffix and context from the right),
    ending on a clean token boundary inside the cursor line of the reply. A tokenizer's `model_max_length` lowers
    `max_tokens`."""
    max_tokens = prompt_token_limit(tokenizer, max_tokens)
    intro, context_block = chat_sections(parts)
    head = _ids(tokenizer, f"{BOS}{TURN_OPEN}user\n{intro}")
    code_start = _ids(tokenizer, f"{FENCE}{parts.language}\n")
    tail = _ids(tokenizer, f"\n{FENCE}{TURN_CLOSE}\n{TURN_OPEN}model\n{EMPTY_THOUGHT}{FENCE}{parts.language}\n")
    line_start = parts.prefix.rfind("\n") + 1
    answer = _ids(tokenizer, parts.prefix[line_start:])
    healed = ""
    if answer:
        healed = tokenizer.decode(answer[-1:])
        answer = answer[:-1]
    prefix_ids = _ids(tokenizer, parts.prefix)
    suffix_ids = _ids(tokenizer, f"{CURSOR}{parts.suffix}")
    context_ids = _ids(tokenizer, context_block)
    budget = max(max_tokens - len(head) - len(code_start) - len(tail) - len(answer), 0)
    suffix_ids = suffix_ids[: max(int(budget * suffix_share), 0)]
    context_ids = context_ids[: max(budget - len(suffix_ids) - len(prefix_ids), budget // 4)]
    prefix_ids = prefix_ids[max(len(prefix_ids) - (budget - len(suffix_ids) - len(context_ids)), 0) :]
    ids = head + context_ids + code_start + prefix_ids + suffix_ids + tail + answer
    return EncodedPrompt(ids=tuple(ids), healed=healed)


DEFAULT_LAYOUT = PromptLayout("default", encode_prompt)
CHAT_LAYOUT = PromptLayout("chat", encode_chat_prompt, stop_sequences=(f"\n{FENCE}", TURN_CLOSE))


def has_token(tokenizer: Any, token: str) -> bool:
    """Whether `token` is one token of the tokenizer's vocabulary (not split, not the unknown token)."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    return token_id is not None and token_id != getattr(tokenizer, "unk_token_id", None)


def layout_for(tokenizer: Any) -> PromptLayout:
    """The embedded model's layout when the tokenizer has its `<|prefix|>` token, else the chat layout."""
    return DEFAULT_LAYOUT if has_token(tokenizer, PREFIX) else CHAT_LAYOUT


def encode_for(tokenizer: Any, parts: PromptParts, max_tokens: int = 2048) -> EncodedPrompt:
    """The prompt for `parts` in the layout that suits `tokenizer`."""
    return layout_for(tokenizer).encode(tokenizer, parts, max_tokens)


def _ids(tokenizer: Any, text: str) -> list[int]:
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids
