"""Checkpoints and their weights: loading a directory or a Hugging Face id, the embedded default model, and the
tiny random checkpoints the tests build."""
