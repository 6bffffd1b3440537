"""Cross-file context for training prompts: imports resolve to corpus files of the same project, definitions render
as the server renders them, and batches show the context on some rows."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from diffusion_copilot.engine.prompt.layout import CONTEXT, SUFFIX
from diffusion_copilot.engine.training.batches import BatchPlan, DeviceCorpus
from diffusion_copilot.engine.training.corpus import SourceFile
from diffusion_copilot.engine.training.dataset import tokenize_corpus
from diffusion_copilot.engine.training.file_context import (
    ContextIndex,
    corpus_contexts,
    imported_names,
    module_name,
)
from diffusion_copilot.engine.weights.tiny_checkpoint import train_tokenizer

GEOMETRY = '''"""Shapes."""


def distance(a, b):
    """The Euclidean distance between two points.

    Both are (x, y) pairs.
    Longer text that the context leaves out.
    """
    return ((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5


class Circle:
    """A circle."""

    def __init__(self, center, radius):
        # remember both
        self.center = center
        self.radius = radius

    def area(self):
        return 3.14159 * self.radius**2

    def unused(self):
        return None
'''
USER = """from .geometry import Circle, distance
from . import missing


def report(c):
    print(c.area(), distance(c.center, (0, 0)))
    return c.area()
"""


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("pkg/geometry.py", "pkg.geometry"),
        ("pkg/__init__.py", "pkg"),
        ("pkg/types.pyi", "pkg.types"),
        ("a-b/c.py", None),
    ],
)
def test_module_name(path: str, name: str | None) -> None:
    assert module_name(path) == name


def test_imported_names_resolve_relative_imports() -> None:
    text = "from . import a, b as c\nfrom ..x.y import (\n  p,\n  q as r,\n)\nimport os.path, json\n"
    pairs = imported_names(text, "pkg.sub.mod", is_package=False)
    assert ("pkg.sub", "a") in pairs and ("pkg.sub", "b") in pairs and ("pkg.sub.a", "") in pairs
    assert ("pkg.x.y", "p") in pairs and ("pkg.x.y", "q") in pairs
    assert ("os.path", "") in pairs and ("json", "") in pairs
    assert ("pkg", "a") in imported_names("from . import a\n", "pkg", is_package=True)


def test_context_renders_imported_definitions_like_the_server() -> None:
    files = [
        SourceFile("pkg/geometry.py", "pkg", "MIT", "python", GEOMETRY),
        SourceFile("pkg/report.py", "pkg", "MIT", "python", USER),
    ]
    context = ContextIndex(files).context_for(files[1], max_chars=1000)
    assert context.startswith("# geometry.py\n")
    assert 'def distance(a, b):\n    """The Euclidean distance between two points.\n' in context
    assert "Longer text" not in context and '..."""' in context  # the docstring head, still closed
    assert "class Circle:" in context and "def __init__(self, center, radius):" in context
    assert "# remember both" not in context  # a comment before the first statement is not the header
    assert "def area(self):" in context and "unused" not in context  # only methods the file uses
    assert len(ContextIndex(files).context_for(files[1], max_chars=200)) <= 200 + len("# geometry.py\n\n")
    both = SourceFile("pkg/both.py", "pkg", "MIT", "python", "import pkg.geometry\n" + USER)
    assert ContextIndex([*files, both]).context_for(both, max_chars=1000).count("def distance") == 1


def test_context_stays_inside_one_project() -> None:
    files = [
        SourceFile("pkg/geometry.py", "other", "MIT", "python", GEOMETRY),
        SourceFile("pkg/report.py", "pkg", "MIT", "python", USER),
    ]
    assert corpus_contexts(files, 1000, workers=1) == ["", ""]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return train_tokenizer(iter([GEOMETRY, USER] * 20), 400)


def test_batches_show_the_context_on_some_rows(tokenizer: Any) -> None:
    files = [
        SourceFile("pkg/geometry.py", "pkg", "MIT", "python", GEOMETRY),
        SourceFile("pkg/report.py", "pkg", "MIT", "python", USER),
    ]
    contexts = corpus_contexts(files, 400, workers=1)
    corpus = tokenize_corpus(tokenizer, files, workers=1, contexts=contexts)
    data = DeviceCorpus(corpus, torch.device("cpu"), len(tokenizer), tokenizer.convert_tokens_to_ids("<|prefix|>"))
    plan = BatchPlan(rows=64, prompt_slots=160, canvas_slots=16, short_canvas=8)
    batch = data.batch(plan, torch.Generator().manual_seed(0))
    shown = 0
    for row in range(plan.rows):
        prompt = tokenizer.decode(batch.tokens[row, : plan.prompt_slots].tolist())
        between = prompt.split(CONTEXT, 1)[1].split(SUFFIX, 1)[0]
        if "pkg/report.py" in prompt and between:
            assert between.startswith("# geometry.py\ndef distance(a, b):")
            shown += 1
        else:
            assert between == ""
    assert 0 < shown < plan.rows
