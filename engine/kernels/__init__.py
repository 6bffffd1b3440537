"""Fast kernels of the engine, each beside the plain-PyTorch function it must equal (tests/test_kernels_*)."""
