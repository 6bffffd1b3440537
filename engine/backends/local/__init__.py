"""The in-process backend: a DiffusionGemma checkpoint run by transformers on this machine's device, with the one
denoising loop over a batch of jobs (`denoise`), its prefill and prefix caches, and the sampler."""
