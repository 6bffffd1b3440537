"""Extracts, from a vLLM wheel, what the `vllm` backend's requests must agree with: the fields of
`CompletionRequest` and of its streamed choices, the type of `vllm_xargs`, the diffusion keys DiffusionGemma's
sampler reads, the model's registry name, and the source of `validate_diffusion_sampling_params` (the check
vLLM applies to those keys at admission). The result is committed as tests/fixtures/vllm-0.33.0-contract.json.

    pip download --no-deps -d /tmp/vllm-wheel vllm==0.33.0
    python tests/harness/vllm_contract.py /tmp/vllm-wheel/vllm-0.33.0-*.whl tests/fixtures/vllm-0.33.0-contract.json
"""

from __future__ import annotations

import ast
import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

PROTOCOL = "vllm/entrypoints/openai/completion/protocol.py"
VALIDATOR = "vllm/utils/diffusion.py"
SAMPLER = "vllm/model_executor/models/diffusion_gemma.py"
REGISTRY = "vllm/model_executor/models/registry.py"


def class_fields(tree: ast.Module, name: str) -> dict[str, str]:
    """Annotated attributes of class `name`: field name → annotation source."""
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return {
                item.target.id: ast.unparse(item.annotation)
                for item in node.body
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
            }
    raise KeyError(name)


def function_source(source: str, name: str) -> str:
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            segment = ast.get_source_segment(source, node)
            assert segment is not None
            return segment
    raise KeyError(name)


def extract(wheel: Path) -> dict[str, Any]:
    with zipfile.ZipFile(wheel) as archive:
        read = lambda path: archive.read(path).decode()  # noqa: E731
        protocol = ast.parse(read(PROTOCOL))
        validator = read(VALIDATOR)
        sampler = read(SAMPLER)
        registry = read(REGISTRY)
    request = class_fields(protocol, "CompletionRequest")
    keys = sorted(set(re.findall(r"""extra\.get\(\s*["'](diffusion_\w+)["']""", sampler + validator)))
    entry = re.search(r'"DiffusionGemmaForBlockDiffusion":\s*\(\s*"(\w+)",\s*"(\w+)"', registry)
    return {
        "source": wheel.name,
        "completion_request_fields": sorted(request),
        "vllm_xargs_annotation": request["vllm_xargs"],
        "stream_choice_fields": sorted(class_fields(protocol, "CompletionResponseStreamChoice")),
        "logprobs_fields": sorted(class_fields(protocol, "CompletionLogProbs")),
        "diffusion_extra_args": keys,
        "registry": {"DiffusionGemmaForBlockDiffusion": list(entry.groups()) if entry else None},
        "validate_diffusion_sampling_params": function_source(validator, "validate_diffusion_sampling_params"),
    }


if __name__ == "__main__":
    Path(sys.argv[2]).write_text(json.dumps(extract(Path(sys.argv[1])), indent=1) + "\n")
