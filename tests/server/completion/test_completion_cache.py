"""The completion cache: LRU by context, and typing through a shown suggestion."""

from __future__ import annotations

import pytest

from diffusion_copilot.server.completion.cache import CompletionCache, context_key

PREFIX, SUFFIX = "def f(x):\n    ", "\n\nprint(f(1))\n"


def test_lru_evicts_the_least_recently_used() -> None:
    cache = CompletionCache(max_entries=2)
    cache.put("a", ("1",))
    cache.put("b", ("2",))
    assert cache.get("a") == ("1",)
    cache.put("c", ("3",))
    assert cache.get("b") is None and cache.get("a") == ("1",) and cache.get("c") == ("3",)


def test_context_key_separates_parts() -> None:
    assert context_key("ab", "c") != context_key("a", "bc")
    assert context_key("x", 1, None) == context_key("x", 1, None)


@pytest.mark.parametrize(("typed", "rest"), [
    ("r", ("eturn x + 1\n    pass", "aise")),
    ("return", (" x + 1\n    pass",)),
    ("return x + 1\n ", ("   pass",)),
    ("q", None),  # does not match the suggestion
    ("", None),  # nothing typed: not a typing-through case
    ("return x + 1\n    pass", None),  # typed all of it: nothing left
])
def test_typing_through(typed: str, rest: tuple[str, ...] | None) -> None:
    cache = CompletionCache()
    cache.remember_shown("u", len(PREFIX), PREFIX, SUFFIX, ("return x + 1\n    pass", "raise"))
    assert cache.typed_through("u", len(PREFIX) + len(typed), PREFIX + typed, SUFFIX) == rest


def test_typing_through_needs_the_same_surroundings() -> None:
    cache = CompletionCache()
    cache.remember_shown("u", len(PREFIX), PREFIX, SUFFIX, ("return x",))
    assert cache.typed_through("u", len(PREFIX) + 1, PREFIX + "r", SUFFIX + "more") is None
    assert cache.typed_through("u", len(PREFIX) + 1, "#" + PREFIX[1:] + "r", SUFFIX) is None
    assert cache.typed_through("other", len(PREFIX) + 1, PREFIX + "r", SUFFIX) is None
    cache.forget("u")
    assert cache.typed_through("u", len(PREFIX) + 1, PREFIX + "r", SUFFIX) is None
