"""The scale-out backend: jobs handed to one or more vLLM servers over HTTP (docs/deployment.md)."""
