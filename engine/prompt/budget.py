"""What a front end needs to size the text it sends to a model: the longest prompt its tokenizer allows, and how
many characters of code a token covers. Plain functions of a tokenizer; no torch.
"""

from __future__ import annotations

from typing import Any

# What prompts hold (cross-file signatures, an indented prefix window): what characters per token are measured on
CODE_SAMPLE = '''# store/cache.py
class LruCache:
    def __init__(self, max_entries: int = 256) -> None:
    def get(self, key: str) -> list[str] | None:
def load_config(path: Path, defaults: dict[str, Any] | None = None) -> Config:
    """Read a TOML file and merge it over the defaults."""

def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Sync a directory to the cache.")
    parser.add_argument("--max-entries", type=int, default=256, help="entries kept in memory")
    parser.add_argument("paths", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.max_entries < 1:
        parser.error(f"--max-entries must be positive, got {args.max_entries}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv if argv is not None else sys.argv[1:])
    config = load_config(Path("~/.config/sync.toml").expanduser())
    cache = LruCache(args.max_entries)
    total = 0
    for path in args.paths:
        for child in sorted(path.rglob("*.py")):
            lines = cache.get(str(child))
            if lines is None:
                lines = child.read_text(encoding="utf-8").splitlines()
                cache.put(str(child), lines)
            total += len(lines)
    print(f"{total} lines in {len(args.paths)} directories")
    return 0


static int count_lines(const char *buffer, size_t length) {
    int lines = 0;
    for (size_t i = 0; i < length; i++) {
        if (buffer[i] == '\\n') {
            lines++;
        }
    }
    return lines;
}
'''


def prompt_token_limit(tokenizer: Any, max_tokens: int = 2048) -> int:
    """`max_tokens`, lowered to the tokenizer's `model_max_length` (the default model's is the prompt length it was
    trained on)."""
    trained_length = getattr(tokenizer, "model_max_length", None)
    return trained_length if isinstance(trained_length, int) and 0 < trained_length < max_tokens else max_tokens


def chars_per_token(tokenizer: Any) -> float:
    """Characters per token of `CODE_SAMPLE`, to 2 decimals as the engine reports it (so every front end turns
    prompt tokens into the same amount of text)."""
    ids = tokenizer(CODE_SAMPLE, add_special_tokens=False)["input_ids"]
    return round(len(CODE_SAMPLE) / max(len(ids), 1), 2)
