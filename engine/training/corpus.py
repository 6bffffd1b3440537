"""The training corpus: permissively licensed source files of the installed Python distributions and the
standard library, deduplicated, with whole files held out for evaluation, and their licences recorded.

Reads only what is installed; never downloads anything.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import random
import re
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LANGUAGE_BY_SUFFIX = {
    ".py": "python",
    ".pyi": "python",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".hpp": "cpp",
    ".cu": "cpp",
    ".cuh": "cpp",
}
PERMISSIVE = re.compile(
    r"\b(MIT|BSD|Apache|PSF|Python Software Foundation|ISC|Zlib|Unlicense|HPND|"
    r"Historical Permission|CC0|0BSD|Python-2\.0)\b",
    re.IGNORECASE,
)
NOT_PERMISSIVE = re.compile(r"\b(GPL|LGPL|AGPL|MPL|EPL|CDDL|Proprietary|Commercial|EULA)\b", re.IGNORECASE)
HELD_OUT_MODULUS = 20  # one file in 20 (5%) is held out, chosen by content hash


@dataclass(frozen=True)
class SourceFile:
    """One source file of the corpus."""

    path: str  # shown to the model, relative to its install root
    distribution: str
    license: str
    language: str
    text: str

    @property
    def digest(self) -> str:
        return hashlib.sha1(normalized(self.text).encode("utf-8")).hexdigest()

    @property
    def is_held_out(self) -> bool:
        return int(self.digest[:8], 16) % HELD_OUT_MODULUS == 0


@dataclass
class SourceStats:
    """What one distribution contributed."""

    license: str
    files: int = 0
    held_out_files: int = 0
    chars: int = 0
    tokens: int = 0
    languages: dict[str, int] = field(default_factory=dict)


def normalized(text: str) -> str:
    """The text with trailing whitespace and blank lines dropped, for duplicate detection."""
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip())


def distribution_license(dist: metadata.Distribution) -> str:
    """The licence a distribution declares: License-Expression, License, or its classifiers."""
    meta: Any = dist.metadata
    expression = meta.get("License-Expression") or ""
    if expression.strip():
        return expression.strip()
    declared = (meta.get("License") or "").strip().splitlines()
    if declared and len(declared[0]) < 80 and declared[0].upper() not in ("UNKNOWN", ""):
        return declared[0]
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License")]
    return "; ".join(classifiers) or "unknown"


def is_permissive(license_text: str) -> bool:
    """True for MIT/BSD/Apache/PSF/ISC-style licences, never for GPL-family or unknown ones."""
    return bool(PERMISSIVE.search(license_text)) and not NOT_PERMISSIVE.search(license_text)


def is_code_like(text: str, min_chars: int = 200, max_chars: int = 400_000) -> bool:
    """Skip tiny files, huge files and data disguised as code (very long lines)."""
    if not min_chars <= len(text) <= max_chars:
        return False
    lines = text.split("\n")
    return max(map(len, lines)) <= 1000 and len(text) / max(len(lines), 1) <= 100


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def installed_sources(languages: tuple[str, ...] = ("python", "c", "cpp")) -> Iterator[SourceFile]:
    """Every permissively licensed source file of the standard library and the installed distributions."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        if "site-packages" in path.parts or "dist-packages" in path.parts:
            continue
        text = _read(path)
        if text is not None:
            yield SourceFile(f"{path.relative_to(stdlib)}", "python-stdlib", "PSF-2.0", "python", text)
    seen: set[str] = set()
    for dist in sorted(metadata.distributions(), key=lambda d: str(d.metadata["Name"] or "").lower()):
        name = str(dist.metadata["Name"] or "").lower()
        if not name or name in seen:
            continue
        seen.add(name)
        license_text = distribution_license(dist)
        if not is_permissive(license_text):
            continue
        for record in sorted(dist.files or [], key=str):
            language = LANGUAGE_BY_SUFFIX.get(Path(str(record)).suffix)
            if language not in languages:
                continue
            text = _read(Path(str(dist.locate_file(record))))
            if text is not None:
                yield SourceFile(str(record), name, license_text, language, text)


def deduplicated(files: Iterator[SourceFile]) -> Iterator[SourceFile]:
    """Code-like files whose normalized text was not seen before."""
    seen: set[str] = set()
    for source in files:
        if not is_code_like(source.text):
            continue
        digest = source.digest
        if digest not in seen:
            seen.add(digest)
            yield source


def capped_by_language(files: list[SourceFile], share: dict[str, float], seed: int = 0) -> list[SourceFile]:
    """Keep all Python; keep other languages up to `share` times the Python character count."""
    rng = random.Random(seed)
    python_chars = sum(len(f.text) for f in files if f.language == "python")
    kept = [f for f in files if f.language == "python"]
    for language, fraction in share.items():
        others = [f for f in files if f.language == language]
        rng.shuffle(others)
        budget = python_chars * fraction
        for source in others:
            if budget <= 0:
                break
            kept.append(source)
            budget -= len(source.text)
    return kept


def source_stats(files: list[SourceFile]) -> dict[str, SourceStats]:
    """Files, held-out files, characters and languages per distribution (tokens are filled in later)."""
    stats: dict[str, SourceStats] = {}
    for source in files:
        entry = stats.setdefault(source.distribution, SourceStats(license=source.license))
        entry.files += 1
        entry.held_out_files += int(source.is_held_out)
        entry.chars += len(source.text)
        entry.languages[source.language] = entry.languages.get(source.language, 0) + 1
    return stats
