"""The document worker applies opens, edits and closes in order, and merges the edits that queued up."""

from __future__ import annotations

from diffusion_copilot.server.context.document_worker import Closed, DocumentWorker, Edited, Opened, coalesced
from diffusion_copilot.server.context.documents import DocumentStore, TextChange


def test_work_is_applied_in_order() -> None:
    store = DocumentStore()
    worker = DocumentWorker(store)
    text = "def f():\n    pass\n"
    worker.submit(Opened("file:///a.py", "/a.py", "python", text))
    for index in range(30):  # typing "g0g1..." after `def f`: each edit needs the ones before it
        typed = "".join(f"g{i}" for i in range(index))
        text = f"def f{typed}g{index}():\n    pass\n"
        worker.submit(Edited("file:///a.py", (TextChange(f"g{index}", (0, 5 + len(typed)), (0, 5 + len(typed))),),
                             "utf-16", text))
    assert worker.wait_idle(30)
    assert store.trees["file:///a.py"].text == text
    assert [d.name for d in store.index.definitions_in("/a.py")] == [text[4 : text.index("(")]]
    worker.submit(Closed("file:///a.py"))
    assert worker.wait_idle(30) and "file:///a.py" not in store.trees


def test_runs_of_edits_to_one_document_are_merged() -> None:
    a1 = Edited("a", (TextChange("x", (0, 0), (0, 0)),), "utf-16", "x")
    a2 = Edited("a", (TextChange("y", (0, 1), (0, 1)),), "utf-16", "xy")
    b = Edited("b", (TextChange("z", (0, 0), (0, 0)),), "utf-16", "z")
    merged = coalesced([a1, a2, b, Closed("a"), a1])
    assert merged == [Edited("a", a1.changes + a2.changes, "utf-16", "xy"), b, Closed("a"), a1]
