"""Training the embedded default model: corpus collection, the tokenizer, denoising examples in the prompt
layout of `engine.prompt.layout`, and a fused training forward over the weights of a `DiffusionGemmaForBlockDiffusion`.

Nothing here runs at completion time; the engine loads the saved checkpoint like any other.
"""
