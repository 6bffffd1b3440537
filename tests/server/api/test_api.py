"""The HTTP API as a client sees it: the real `diffusion-copilot api` process on loopback, on the real engine
process and a real (random-weight) checkpoint, driven by real HTTP clients (httpx and OpenAI's own SDK).

The weights are random, so the assertions are about behaviour and about where the text comes from: with a fixed
seed, the API must give exactly what the language server gives for the same document and cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_harness import ApiServer, running_api
from lsp_harness import LspEnv, lsp_env, started

__all__ = ["lsp_env"]
DOC = "import os\n\ndef main():\n    "
PATH = "/work/example.py"
SLOW = {"max_steps": 512, "canvas_length": 128}  # seconds of work on a CPU: only a time budget ends it


@pytest.fixture(scope="module")
def api(lsp_env: LspEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with running_api(lsp_env.env, lsp_env.model, tmp_path_factory.mktemp("api")) as server:
        yield server


def code(server: ApiServer, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    with server.client() as client:
        return client.post("/v1/code/completions", json=body, **kwargs)


def events(response: httpx.Response) -> list[tuple[str, Any]]:
    """(event, data) pairs of a server-sent event stream."""
    out = []
    for block in response.text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if "data" in fields:
            data = fields["data"]
            out.append((fields.get("event", "message"), data if data == "[DONE]" else json.loads(data)))
    return out


async def test_code_completions_are_the_language_servers(api: ApiServer, lsp_env: LspEnv) -> None:
    settings = lsp_env.settings(alternatives=2, seed=7)
    async with started(lsp_env, settings) as s:
        await s.wait_ready()
        s.open(f"file://{PATH}", DOC)
        lsp = await s.complete(f"file://{PATH}", 3, 4, invoked=True)
    assert lsp is not None and lsp.items
    response = code(api, {"text": DOC, "position": {"line": 3, "character": 4}, "language": "python", "path": PATH,
                          "n": 2, "seed": 7, "max_steps": settings["maxSteps"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [item["text"] for item in body["items"]] == [item.insert_text for item in lsp.items]
    cursor = {"line": 3, "character": 4}
    assert all(item["range"] == {"start": cursor, "end": cursor} for item in body["items"])
    assert body["mode"] == "body" and body["model_has_random_weights"] is True
    assert body["timings"]["steps"] >= 1 and body["timings"]["engine_ms"] > 0


def test_each_position_encoding_names_the_same_cursor(api: ApiServer) -> None:
    line = "s = '😀中é' + "  # an astral emoji (2 UTF-16 units, 4 UTF-8 bytes), a CJK and a Latin-1 character
    text = f"{line}\n"
    units = {"utf-16": len(line.encode("utf-16-le")) // 2, "utf-8": len(line.encode()), "utf-32": len(line)}
    texts = set()
    for encoding, character in units.items():
        response = code(api, {"text": text, "position": {"line": 0, "character": character}, "seed": 3,
                              "position_encoding": encoding, "language": "python", "max_steps": 4})
        assert response.status_code == 200, response.text
        item = response.json()["items"][0] if response.json()["items"] else None
        assert item is None or item["range"]["start"] == {"line": 0, "character": character}
        texts.add(item["text"] if item else None)
    assert len(texts) == 1  # the same cursor, so the same completion


def test_integer_fields_take_integral_numbers_as_json_schema_does(api: ApiServer) -> None:
    position = {"line": 3.0, "character": 4.0}
    response = code(api, {"text": DOC, "position": position, "n": 1.0, "max_steps": 4.0, "seed": 7.0})
    assert response.status_code == 200, response.text
    for field, value in (("n", 1.5), ("max_steps", True), ("seed", "7")):
        response = code(api, {"text": DOC, "position": {"line": 3, "character": 4}, field: value})
        assert response.status_code == 400 and response.json()["error"]["param"] == field, response.text
    with api.client() as client:
        response = client.post("/v1/completions", json={"prompt": DOC, "max_tokens": 8.0, "n": 1.0, "seed": 3.0})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("body", "where"), [
    ({"position": {"line": 0, "character": 0}}, "text"),
    ({"text": "x", "position": {"line": "0", "character": 0}}, "position.line"),
    ({"text": "x", "position": {"line": 0, "character": -1}}, "position.character"),
    ({"text": "x", "position": {"line": 3, "character": 0}}, "position"),
    ({"text": "x", "position": {"line": 0, "character": 0}, "position_encoding": "utf-7"}, "position_encoding"),
    ({"text": "x", "position": {"line": 0, "character": 0}, "n": 99}, "n"),
    ({"text": "x", "position": {"line": 0, "character": 0}, "other_files": [{"path": "a.py"}]}, "other_files.0.text"),
    ({"text": "x", "position": {"line": 0, "character": 0}, "surprise": 1}, "surprise"),
    ([1, 2, 3], None),
])
def test_bad_code_bodies_get_400_with_a_message(api: ApiServer, body: Any, where: str | None) -> None:
    response = code(api, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert where is None or error["param"] == where


@pytest.mark.parametrize(("content", "headers", "status"), [
    (b'{"text": "x", "position": ', {"content-type": "application/json"}, 400),  # not JSON
    (b'{"text": "\xff"}', {"content-type": "application/json"}, 400),  # not UTF-8
    (b'{"text": "x", "position": {"line": 0, "character": 0}}', {"content-type": "text/plain"}, 415),
    (b'{"prompt": "x"}', {}, 415),
])
def test_malformed_requests_get_4xx(api: ApiServer, content: bytes, headers: dict[str, str], status: int) -> None:
    with api.client() as client:
        for path in ("/v1/code/completions", "/v1/completions"):
            response = client.post(path, content=content, headers=headers)
            assert response.status_code == status, response.text
            assert response.json()["error"]["message"]


def test_a_body_that_is_not_utf8_gets_400_naming_the_byte(api: ApiServer) -> None:
    with api.client() as client:
        for path in ("/v1/code/completions", "/v1/completions"):
            response = client.post(path, content=b'{"prompt": "caf\xe9", "text": "x"}',
                                   headers={"content-type": "application/json"})
            assert response.status_code == 400, response.text
            assert response.json()["error"]["message"] == "the body is not valid UTF-8: byte 0xe9 at offset 15"


def test_bodies_over_the_size_limit_get_413(api: ApiServer) -> None:
    big = json.dumps({"text": "x" * (4 * 1024 * 1024 + 1), "position": {"line": 0, "character": 0}}).encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while the body streams in
        for start in range(0, len(big), 65536):
            yield big[start:start + 65536]

    with api.client() as client:
        assert client.post("/v1/code/completions", content=big,
                           headers={"content-type": "application/json"}).status_code == 413
        response = client.post("/v1/code/completions", content=chunks(), headers={"content-type": "application/json"})
        assert response.status_code == 413 and "larger than" in response.json()["error"]["message"]


def test_paths_named_in_a_request_are_never_opened(api: ApiServer, tmp_path: Path) -> None:
    # Opening a FIFO that has no writer blocks: an answer proves that no named path was opened.
    fifo = tmp_path / "secrets.py"
    os.mkfifo(fifo)
    body = {"text": "from secrets import token\n\ntoken(", "position": {"line": 2, "character": 6},
            "path": str(fifo), "language": "python", "max_steps": 2,
            "other_files": [{"path": str(fifo), "text": "def token(n): ...\n"}],
            "recent_edits": [{"path": str(fifo), "text": "token(16)"}]}
    response = code(api, body, timeout=30)
    assert response.status_code == 200, response.text


def test_a_time_budget_ends_the_denoising(api: ApiServer) -> None:
    response = code(api, {"text": DOC, "position": {"line": 3, "character": 4}, "time_budget_ms": 300, **SLOW})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["finish_reason"] == "deadline" and body["timings"]["steps"] < SLOW["max_steps"]


def test_streaming_sends_drafts_then_the_final_item(api: ApiServer) -> None:
    request = {"text": DOC, "position": {"line": 3, "character": 4}, "seed": 11, "max_steps": 6}
    with api.client() as client:
        streamed = client.post("/v1/code/completions", json={**request, "stream": True})
        plain = client.post("/v1/code/completions", json=request)
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("text/event-stream")
    received = events(streamed)
    drafts = [data for name, data in received if name == "draft"]
    assert [d["step"] for d in drafts] == list(range(1, len(drafts) + 1)) and len(drafts) >= 1
    assert received[-1][0] == "final" and {name for name, _ in received} <= {"draft", "line", "final"}
    assert received[-1][1]["items"] == plain.json()["items"]


def test_openai_sdk_works_unchanged(api: ApiServer) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{api.url}/v1", api_key="unused", max_retries=0)
    models = client.models.list()
    assert len(models.data) == 1
    args = {"model": models.data[0].id, "prompt": DOC, "suffix": "\n\nmain()\n", "max_tokens": 24, "seed": 5,
            "stop": ["\n\n\n"], "temperature": 0.2}
    done = client.completions.create(n=2, **args)
    assert [c.index for c in done.choices] == [0, 1]
    assert all(c.finish_reason in ("stop", "length") and "\n\n\n" not in c.text for c in done.choices)
    assert done.usage is not None and done.usage.completion_tokens > 0
    text = "".join(chunk.choices[0].text for chunk in client.completions.create(stream=True, **args))
    assert text == client.completions.create(**args).choices[0].text


def test_openai_prompt_batches_are_refused_with_a_message(api: ApiServer) -> None:
    with api.client() as client:
        response = client.post("/v1/completions", json={"prompt": ["a", "b"]})
    assert response.status_code == 400 and response.json()["error"]["param"] == "prompt"


def test_health_models_and_schema(api: ApiServer) -> None:
    with api.client() as client:
        health = client.get("/v1/health").json()
        assert health["status"] == "ok" and health["model_has_random_weights"] is True
        assert client.get("/v1/models").json()["data"][0]["object"] == "model"
        served = client.get("/openapi.json").json()
        assert client.get("/nowhere").status_code == 404
        assert client.delete("/v1/health").headers["allow"] == "GET"
    committed = json.loads((Path(__file__).parents[3] / "docs" / "openapi.json").read_text())
    assert served == committed, "docs/openapi.json is stale: diffusion-copilot api --print-openapi > docs/openapi.json"


def test_without_a_token_only_loopback_hosts_are_answered(api: ApiServer) -> None:
    with api.client() as client:
        response = client.get("/v1/health", headers={"Host": "attacker.example:8765"})
        assert response.status_code == 403 and response.json()["error"]["code"] == "bad_host"
        assert client.get("/v1/health", headers={"Host": "localhost:8765"}).status_code == 200


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


async def test_a_client_that_goes_away_cancels_its_job(api: ApiServer) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=60) as client:
        cancelled = 'diffusion_copilot_api_cancellations_total{reason="client_disconnected"}'
        before = metric((await client.get("/metrics")).text, cancelled)
        body = {"text": DOC, "position": {"line": 3, "character": 4}, "time_budget_ms": 10_000, **SLOW}
        work = asyncio.ensure_future(client.post("/v1/code/completions", json=body))
        async with asyncio.timeout(30):
            while metric((await client.get("/metrics")).text, "diffusion_copilot_api_queue_depth") < 1:
                await asyncio.sleep(0.02)  # polling a condition, with a deadline
        work.cancel()  # closes the connection
        async with asyncio.timeout(30):
            while metric((await client.get("/metrics")).text, cancelled) <= before:
                await asyncio.sleep(0.05)
            while metric((await client.get("/metrics")).text, "diffusion_copilot_api_queue_depth") > 0:
                await asyncio.sleep(0.05)


async def test_a_full_queue_answers_429_with_retry_after(lsp_env: LspEnv, tmp_path: Path) -> None:
    with running_api(lsp_env.env, lsp_env.model, tmp_path, "--max-queue", "1") as server:
        body = {"text": DOC, "position": {"line": 3, "character": 4}, "time_budget_ms": 2000, **SLOW}
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            responses = await asyncio.gather(*(client.post("/v1/code/completions", json=body) for _ in range(4)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 429, 429, 429], [r.text for r in responses]
        for refused in (r for r in responses if r.status_code == 429):
            assert int(refused.headers["retry-after"]) >= 1 and refused.json()["error"]["code"] == "queue_full"


def test_a_token_is_required_when_given(lsp_env: LspEnv, tmp_path: Path) -> None:
    with running_api(lsp_env.env, lsp_env.model, tmp_path, token="s3cret") as server:
        with httpx.Client(base_url=server.url) as anonymous:
            assert anonymous.get("/v1/health").status_code == 401
            wrong = anonymous.get("/v1/models", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        with server.client() as client:
            assert client.get("/v1/models").status_code == 200


def post_json(server: ApiServer, path: str, body: dict[str, Any]) -> httpx.Response:
    """POST `body` as `json.dumps` writes it: a lone surrogate goes out as the JSON escape `\\ud800`."""
    with server.client() as client:
        return client.post(path, content=json.dumps(body).encode(), headers={"content-type": "application/json"})


def test_lone_surrogates_are_completed_not_500(api: ApiServer) -> None:
    text = "s = '\ud800'\ndef main():\n    "
    other = {"path": "/work/other\udfff.py", "text": "def helper():\n    return '\udc00'\n"}
    for line, character, answered in ((2, 4, 4), (0, 6, 6), (0, 99, 7)):  # the surrogate is one UTF-16 unit
        response = post_json(api, "/v1/code/completions", {
            "text": text, "position": {"line": line, "character": character}, "language": "python",
            "path": "/work/s\ud800.py", "other_files": [other], "recent_edits": [{"path": "x", "text": "\ud800"}],
            "max_steps": 2})
        assert response.status_code == 200, response.text
        assert all(item["range"]["start"] == {"line": line, "character": answered}
                   for item in response.json()["items"])
    for prompt in ("def f():\n    return '\ud800", ["\udbff"]):
        response = post_json(api, "/v1/completions", {"prompt": prompt, "suffix": "\udc00'\n", "max_tokens": 8,
                                                      "path": "/work/\ud800.py"})
        assert response.status_code == 200, response.text
        assert response.json()["choices"]


async def test_health_answers_while_a_large_request_is_planned(api: ApiServer) -> None:
    unit = "class Shape:\n    def area(self):\n        return self.width * self.height  # a longer line of code\n\n"
    text = unit * (3_000_000 // len(unit))  # 3 MB: context building parses, which must not hold the event loop
    line = text.count("\n") // 2
    content = json.dumps({"text": text, "position": {"line": line, "character": 8}, "language": "python",
                          "path": "/work/big.py", "max_steps": 1, "canvas_length": 16}).encode()
    worst_s = 0.0
    async with httpx.AsyncClient(base_url=api.url, timeout=120) as client:
        work = asyncio.ensure_future(client.post("/v1/code/completions", content=content,
                                                 headers={"content-type": "application/json"}))
        while not work.done():
            began = time.perf_counter()
            assert (await client.get("/v1/health")).status_code == 200
            worst_s = max(worst_s, time.perf_counter() - began)
            await asyncio.sleep(0.02)  # polling while the request runs
        response = await work
    assert response.status_code == 200, response.text
    assert worst_s < 0.5, f"/v1/health took {worst_s:.2f} s behind a 3 MB request"


def test_a_client_that_never_completes_its_headers_is_dropped(lsp_env: LspEnv, tmp_path: Path) -> None:
    with running_api(lsp_env.env, lsp_env.model, tmp_path, "--header-timeout-s", "1") as server:
        port = int(server.url.rsplit(":", 1)[1])
        for sent in (b"", b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"):  # nothing; headers never ended
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(sent)
                sock.settimeout(30)
                began = time.monotonic()
                assert sock.recv(1024) == b""  # the server closed the connection
                assert time.monotonic() - began < 10
        with server.client() as client:  # a client that sends its request at once is answered
            assert client.get("/v1/health").status_code == 200


async def test_an_api_stopping_while_its_engine_stops_starts_no_engine(lsp_env: LspEnv, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"  # an engine of its own, so that stopping it leaves the other tests theirs
    env = {**lsp_env.env, "DIFFUSION_COPILOT_RUNTIME_DIR": str(run_dir)}
    with running_api(env, lsp_env.model, tmp_path) as server:
        engine_pid = int(next(run_dir.glob("engine-*.lock")).read_text())
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            body = {"text": DOC, "position": {"line": 3, "character": 4}, "time_budget_ms": 10_000, **SLOW}
            work = asyncio.ensure_future(client.post("/v1/code/completions", json=body))
            async with asyncio.timeout(30):
                while metric((await client.get("/metrics")).text, "diffusion_copilot_api_queue_depth") < 1:
                    await asyncio.sleep(0.02)  # polling a condition, with a deadline
            server.process.send_signal(signal.SIGTERM)  # the API drains the request in flight (up to 5 s) ...
            os.kill(engine_pid, signal.SIGTERM)  # ... while its engine stops
            with contextlib.suppress(httpx.HTTPError):
                await work
        await asyncio.to_thread(server.process.wait, 30)
    left = [p.name for p in Path("/proc").iterdir() if p.name.isdigit() and engine_of(p, run_dir)]
    assert not left, f"engine processes left running: {left}"


def engine_of(proc: Path, run_dir: Path) -> bool:
    """Whether /proc/PID is a live engine process of `run_dir`."""
    try:
        words = (proc / "cmdline").read_bytes().split(b"\0")
        state = (proc / "stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return b"engine" in words and str(run_dir).encode() in words and state != "Z"
