"""Rewrites the server settings in package.json's `contributes.configuration` from the server's schema
(`diffusion_copilot.server.settings`), keeping the extension's own `diffusionCopilot.server.*` and
`diffusionCopilot.trace.*` keys after them. Run with the project's Python: `python scripts/sync_settings.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

from diffusion_copilot.server.settings import settings_json_schema

PACKAGE_JSON = Path(__file__).resolve().parent.parent / "package.json"
CLIENT_ONLY_PREFIXES = ("diffusionCopilot.server.", "diffusionCopilot.trace.")


def main() -> None:
    package = json.loads(PACKAGE_JSON.read_text())
    configuration = package["contributes"]["configuration"]
    client_only = {k: v for k, v in configuration["properties"].items() if k.startswith(CLIENT_ONLY_PREFIXES)}
    configuration["properties"] = {**settings_json_schema()["properties"], **client_only}
    PACKAGE_JSON.write_text(json.dumps(package, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
