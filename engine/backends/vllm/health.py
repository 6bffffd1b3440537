"""What a vLLM deployment serves, and whether each replica is up: the `/v1/models` discovery at connect time and
the `/health` probes the backend repeats in the background."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx

from ..backend import BackendConfig, BackendError
from .replicas import Replica, ReplicaSet, ReplicaState
from .request import server_error_text
from .served_model import ServedModel, find_served_model

log = logging.getLogger(__name__)


async def discover(client: httpx.AsyncClient, replicas: ReplicaSet, config: BackendConfig) -> ServedModel:
    """What the replicas serve; all reachable ones must agree, and at least one must be reachable."""
    found: dict[str, ServedModel] = {}
    errors: list[str] = []
    for replica in replicas.replicas:
        try:
            response = await client.get(f"{replica.url}/v1/models", timeout=config.connect_timeout_s)
        except httpx.HTTPError as err:
            errors.append(f"{replica.url}: {describe(err)}")
            replicas.mark_failed(replica, describe(err), time.monotonic())
            continue
        if response.status_code == 401:
            raise BackendError(
                f"{replica.url} refused the token (HTTP 401): pass the server's --api-key as --vllm-token"
            )
        if response.status_code != 200:
            text = server_error_text(response.status_code, response.content)
            raise BackendError(f"{replica.url}/v1/models: {text}")
        found[replica.url] = find_served_model(response.json(), config.model, replica.url)
    if not found:
        raise BackendError("no vLLM server reachable: " + "; ".join(errors))
    names = {m.name for m in found.values()}
    if len(names) > 1:
        raise BackendError(
            "the vLLM replicas serve different models: " + ", ".join(f"{u} serves {m.name}" for u, m in found.items())
        )
    for error in errors:
        log.warning("vLLM replica unreachable for now: %s", error)
    return next(iter(found.values()))


async def probe_all(client: httpx.AsyncClient, replicas: ReplicaSet, timeout_s: float) -> tuple[ReplicaState, ...]:
    """Ask every replica's `/health` at once and record the answers; the replicas' states after."""
    await asyncio.gather(*(_probe(client, replicas, r, timeout_s) for r in replicas.replicas))
    return replicas.states()


async def _probe(client: httpx.AsyncClient, replicas: ReplicaSet, replica: Replica, timeout_s: float) -> None:
    try:
        response = await client.get(f"{replica.url}/health", timeout=timeout_s)
    except httpx.HTTPError as err:
        replicas.mark_failed(replica, describe(err), time.monotonic())
        return
    if response.status_code == 200:
        replicas.mark_ok(replica)
    else:
        replicas.mark_failed(replica, f"/health: HTTP {response.status_code}", time.monotonic())


def describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
