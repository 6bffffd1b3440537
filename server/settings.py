"""The one settings schema (section `diffusionCopilot`): defaults, validation at the edge, and its JSON schema
export, which the VS Code package.json and the Neovim defaults are checked against.

Validation never raises: each bad value becomes a message and the previous value is kept. Machine keys name a
program, a server or a secret: only `initializationOptions` (filled by the editor from user settings) set them,
never workspace settings (docs/protocol.md, "Where settings come from").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from .engine_client import TOKEN_ENV_PREFIX, VLLM_TOKEN_ENV

SECTION = "diffusionCopilot"
CLIENT_KEYS = ("server", "trace")  # editor-side settings (how to start this server, tracing): ignored here
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "bfloat16", "float16", "float32")
BACKENDS = ("transformers", "vllm")


@dataclass(frozen=True)
class Settings:
    """What the user can set; field names are the camelCase keys under `diffusionCopilot`, in snake case."""

    enable: bool = True
    enabled_languages: tuple[str, ...] = ("*",)
    disabled_languages: tuple[str, ...] = ("plaintext", "markdown")
    model: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    max_steps: int = 16
    canvas_length: int = 32
    alternatives: int = 3
    latency_budget_ms: int = 1500
    debounce_ms: int = 50
    engine_command: tuple[str, ...] = ()
    telemetry: bool = True
    seed: int | None = None
    min_confidence: float = 0.15
    backend: str = "transformers"
    vllm_urls: tuple[str, ...] = ()
    vllm_token_env: str = VLLM_TOKEN_ENV
    next_edit_enabled: bool = True
    next_edit_min_confidence: float = 0.5
    next_edit_debounce_ms: int = 300

    def is_enabled_for(self, language: str) -> bool:
        """Whether completions are wanted in documents of `language`."""
        if not self.enable or language in self.disabled_languages:
            return False
        return "*" in self.enabled_languages or language in self.enabled_languages


@dataclass(frozen=True)
class _Key:
    """How one setting is described and checked."""

    description: str
    schema: dict[str, Any]
    check: Callable[[Any], Any]  # returns the parsed value or raises ValueError with the reason
    is_machine: bool = False  # names a program, a server or a secret: never taken from workspace settings


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def _int_between(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"expected an integer from {low} to {high}")
        return value

    return check


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of strings")
    return tuple(value)


def _model(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("expected a checkpoint directory, a Hugging Face id, or null")
    return value


def _probability(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError("expected a number from 0 to 1")
    return float(value)


def _seed(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ValueError("expected a non-negative integer or null")
    return value


def _device(value: Any) -> str:
    if isinstance(value, str) and (value in DEVICES or (value.startswith("cuda:") and value[5:].isdigit())):
        return value
    raise ValueError("expected auto, cpu, cuda, cuda:N or mps")


def _dtype(value: Any) -> str:
    if value in DTYPES:
        return str(value)
    raise ValueError("expected " + ", ".join(DTYPES))


def _backend(value: Any) -> str:
    if value in BACKENDS:
        return str(value)
    raise ValueError("expected " + " or ".join(BACKENDS))


def _urls(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of http(s) URLs")
    for url in value:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
    return tuple(url.strip() for url in value)


def _env_name(value: Any) -> str:
    if not isinstance(value, str) or not value.isidentifier():
        raise ValueError("expected the name of an environment variable")
    if not value.startswith(TOKEN_ENV_PREFIX):
        raise ValueError(f"only variables named {TOKEN_ENV_PREFIX}* are read")
    return value


def _int_schema(low: int, high: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": low, "maximum": high}


_STRINGS = {"type": "array", "items": {"type": "string"}}
KEYS: dict[str, _Key] = {
    "enable": _Key("Show inline completions.", {"type": "boolean"}, _bool),
    "enabledLanguages": _Key("Language ids to complete in; \"*\" means all.", _STRINGS, _strings),
    "disabledLanguages": _Key("Language ids never completed (wins over enabledLanguages).", _STRINGS,
                              _strings),
    "model": _Key("Checkpoint directory or Hugging Face id; null uses the embedded default model.",
                  {"type": ["string", "null"]}, _model),
    "device": _Key("Where the engine runs: auto, cpu, cuda, cuda:N or mps.", {"type": "string"}, _device),
    "dtype": _Key("Weight dtype of the engine.", {"type": "string", "enum": list(DTYPES)}, _dtype),
    "maxSteps": _Key("Denoising steps at most per canvas.", _int_schema(1, 512), _int_between(1, 512)),
    "canvasLength": _Key("Canvas length in tokens.", _int_schema(4, 256), _int_between(4, 256)),
    "alternatives": _Key("Completions computed for an explicitly invoked request.", _int_schema(1, 8),
                         _int_between(1, 8)),
    "latencyBudgetMs": _Key("Wall-clock budget of an automatic completion in the engine, in milliseconds.",
                            _int_schema(50, 60000), _int_between(50, 60000)),
    "debounceMs": _Key("Wait before an automatic request reaches the engine, in milliseconds.",
                       _int_schema(0, 2000), _int_between(0, 2000)),
    "engineCommand": _Key("Command that starts the engine process; empty uses this Python.", _STRINGS,
                          _strings, is_machine=True),
    "telemetry": _Key("Record shown and accepted completions in a local SQLite file (nothing leaves the "
                      "machine).", {"type": "boolean"}, _bool),
    "seed": _Key("Fix the sampler's randomness (reproducible completions); null draws a new seed each time.",
                 {"type": ["integer", "null"], "minimum": 0}, _seed),
    "minConfidence": _Key("Completions end before the first token the model is less sure of than this (its "
                          "low-confidence tail is cut); 0 keeps everything.",
                          {"type": "number", "minimum": 0, "maximum": 1}, _probability),
    "backend": _Key("Where the engine runs the model: transformers (on this machine) or vllm (on the servers of "
                    "vllmUrls).", {"type": "string", "enum": list(BACKENDS)}, _backend),
    "vllmUrls": _Key("vLLM servers of a team deployment (http://host:8000), used when backend is vllm; several "
                     "are replicas.", {"type": "array", "items": {"type": "string"}}, _urls, is_machine=True),
    "vllmTokenEnv": _Key(f"Name of the environment variable holding the vLLM servers' --api-key (the token is "
                         f"never put in settings); it must start with {TOKEN_ENV_PREFIX}.", {"type": "string"},
                         _env_name, is_machine=True),
    "nextEdit.enabled": _Key("Suggest the edit that follows the last one (next-edit suggestions), at the cursor or "
                             "elsewhere in the file.", {"type": "boolean"}, _bool),
    "nextEdit.minConfidence": _Key("A suggested edit is dropped when the model's mean probability over its rewrite "
                                   "is below this (ignored for random weights).",
                                   {"type": "number", "minimum": 0, "maximum": 1}, _probability),
    "nextEdit.debounceMs": _Key("Wait after an edit before an automatic next-edit request reaches the engine, in "
                                "milliseconds.", _int_schema(0, 5000), _int_between(0, 5000)),
}
GROUPS = frozenset(key.split(".")[0] for key in KEYS if "." in key)  # nested objects: {"nextEdit": {...}}


def field_name(key: str) -> str:
    """The dataclass field of a camelCase key (`maxSteps` → `max_steps`, `nextEdit.enabled` → `next_edit_enabled`)."""
    return "".join("_" + c.lower() if c.isupper() else c for c in key).replace(".", "_")


def default_value(key: str) -> Any:
    """The default of a key as JSON (tuples become lists)."""
    value = getattr(Settings(), field_name(key))
    return list(value) if isinstance(value, tuple) else value


def default_section() -> dict[str, Any]:
    """The defaults as a client sends the section: dotted keys as nested objects (`{"nextEdit": {"enabled": ...}}`)."""
    section: dict[str, Any] = {}
    for key in KEYS:
        *groups, name = key.split(".")
        inner = section
        for group in groups:
            inner = inner.setdefault(group, {})
        inner[name] = default_value(key)
    return section


def flat(raw: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """`raw` with its nested groups as dotted keys (VS Code and Lua send `{"nextEdit": {"enabled": false}}`), and a
    warning for each group that is not an object."""
    keys: dict[str, Any] = {}
    warnings = []
    for key, value in raw.items():
        if key in GROUPS and isinstance(value, Mapping):
            keys.update({f"{key}.{inner}": v for inner, v in value.items()})
        elif key in GROUPS:
            warnings.append(f"{SECTION}.{key}: expected an object (got {value!r}); ignored")
        else:
            keys[key] = value
    return keys, tuple(warnings)


def settings_json_schema() -> dict[str, Any]:
    """The schema in the shape of VS Code's `contributes.configuration` (keys `diffusionCopilot.<key>`)."""
    properties = {
        f"{SECTION}.{key}": {**spec.schema, "default": default_value(key), "description": spec.description,
                             **({"scope": "machine"} if spec.is_machine else {})}
        for key, spec in KEYS.items()
    }
    return {"title": "Diffusion Copilot", "type": "object", "properties": properties}


def section_of(raw: Any) -> Mapping[str, Any] | None:
    """The `diffusionCopilot` object inside what a client sent: `{"diffusionCopilot": {...}}`, the inner
    object itself, or dotted keys (`{"diffusionCopilot.maxSteps": 8}`); None when there is none."""
    if not isinstance(raw, Mapping):
        return None
    inner = raw.get(SECTION)
    if isinstance(inner, Mapping):
        return inner
    dotted = {k[len(SECTION) + 1:]: v for k, v in raw.items()
              if isinstance(k, str) and k.startswith(SECTION + ".")}
    if dotted:
        return dotted
    if any(k in KEYS or k in GROUPS for k in raw):
        return raw
    return None


def updated(current: Settings, raw: Mapping[str, Any]) -> tuple[Settings, tuple[str, ...]]:
    """`current` with the valid values of `raw` applied, and one warning per invalid or unknown key."""
    changes: dict[str, Any] = {}
    keys, group_warnings = flat(raw)
    warnings = list(group_warnings)
    for key, value in keys.items():
        spec = KEYS.get(key)
        if spec is None and key.split(".")[0] in CLIENT_KEYS:
            continue
        if spec is None:
            warnings.append(f"{SECTION}.{key}: unknown setting, ignored")
            continue
        try:
            changes[field_name(key)] = spec.check(value)
        except ValueError as err:
            kept = getattr(current, field_name(key))
            warnings.append(f"{SECTION}.{key}: {err} (got {value!r}); keeping {kept!r}")
    result = replace(current, **changes)
    if result.backend == "vllm" and not result.vllm_urls:
        warnings.append(f"{SECTION}.backend: vllm needs at least one URL in {SECTION}.vllmUrls; keeping "
                        f"backend {current.backend!r} and vllmUrls {list(current.vllm_urls)!r}")
        result = replace(result, backend=current.backend, vllm_urls=current.vllm_urls)
    return result, tuple(warnings)


def machine_keys() -> tuple[str, ...]:
    """The keys that only `initializationOptions` set."""
    return tuple(key for key, spec in KEYS.items() if spec.is_machine)


def workspace_part(current: Settings, raw: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """What workspace settings (a configuration answer or a push) may change of `raw`: it without the machine
    keys, and a warning naming those whose value differed from `current` (an equal value is no change)."""
    kept = {key: value for key, value in raw.items() if key not in machine_keys()}
    ignored = []
    for key in machine_keys():
        if key not in raw:
            continue
        try:
            is_same = KEYS[key].check(raw[key]) == getattr(current, field_name(key))
        except ValueError:
            is_same = False
        if not is_same:
            ignored.append(f"{SECTION}.{key}")
    if not ignored:
        return kept, None
    return kept, (f"{', '.join(ignored)}: ignored from workspace settings (they name a program, a server or a "
                  "secret); set them in user settings, from which the editor passes them when it starts the server")
