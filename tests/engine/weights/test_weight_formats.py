"""Each weight format round-trips a tensor within its precision, keeps the bytes it claims, and lays its tensors out
as compressed-tensors does (checked against that library's own compressors where it is installed)."""

from __future__ import annotations

import pytest
import torch

from diffusion_copilot.engine.weights.formats import FORMATS, pack_nibbles, unpack_nibbles, weight_format

# Largest error relative to each row's largest value: rounding to the nearest code of each format.
RELATIVE_ERROR = {"bf16": 0.0, "fp8": 0.07, "int8": 0.005, "int4": 0.08, "nvfp4": 0.2}


@pytest.mark.parametrize("name", list(FORMATS))
# a linear, fused experts [experts, out, in], and inputs that int4 splits in groups of 64 (128 does not divide them)
@pytest.mark.parametrize("shape", [(96, 256), (3, 40, 128), (3, 40, 192)])
def test_quantize_then_dequantize_is_close(name: str, shape: tuple[int, ...]):
    weight = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    fmt = weight_format(name)
    q = fmt.quantize(weight)
    assert q.shape == shape
    back = fmt.dequantize(q, torch.float32)
    assert back.shape == weight.shape
    row_max = weight.abs().amax(dim=-1, keepdim=True)
    assert float(((back - weight).abs() / row_max).max()) <= RELATIVE_ERROR[name] + 1e-6
    if name != "bf16":
        assert not torch.equal(back, weight)  # it did quantize


@pytest.mark.parametrize(("name", "bytes_per_weight"), [("fp8", 1), ("int8", 1), ("int4", 0.5), ("nvfp4", 0.5)])
def test_resident_bytes_are_the_codes_and_their_scales(name: str, bytes_per_weight: float):
    weight = torch.randn(4, 64, 256, dtype=torch.bfloat16)
    q = weight_format(name).quantize(weight)
    codes = weight.numel() * bytes_per_weight
    assert codes < q.resident_bytes <= codes * 1.2
    assert q.resident_bytes <= weight.numel() * weight_format(name).bits / 8 * 1.05


@pytest.mark.parametrize("name", ["fp8", "int8", "int4", "nvfp4"])
def test_fused_experts_quantized_a_few_at_a_time_equal_all_at_once(name: str, monkeypatch):
    import diffusion_copilot.engine.weights.formats as formats

    weight = torch.randn(7, 16, 128, generator=torch.Generator().manual_seed(5))
    whole = weight_format(name).quantize(weight)
    monkeypatch.setattr(formats, "CHUNK_ELEMENTS", 3 * 16 * 128)  # chunks of 3, 3 and 1 experts
    chunked = weight_format(name).quantize(weight)
    assert chunked.shape == whole.shape and chunked.tensors.keys() == whole.tensors.keys()
    for key, tensor in whole.tensors.items():
        assert torch.equal(chunked.tensors[key].view(torch.uint8), tensor.view(torch.uint8)), key


def test_e2m1_rounds_to_the_nearest_code_ties_to_the_smaller():
    from diffusion_copilot.engine.weights.formats import E2M1_VALUES, _e2m1_codes

    magnitudes = torch.tensor(E2M1_VALUES)
    x = torch.linspace(-6, 6, 4801)
    expected = (x.abs()[:, None] - magnitudes).abs().argmin(dim=-1) | (torch.signbit(x).long() << 3)
    assert torch.equal(_e2m1_codes(x).long(), expected)


def test_nibbles_pack_the_even_element_low():
    codes = torch.tensor([[1, 2, 15, 0]])
    packed = pack_nibbles(codes)
    assert packed.tolist() == [[0x21, 0x0F]]
    assert torch.equal(unpack_nibbles(packed), codes)


def test_unknown_format_names_the_known_ones():
    with pytest.raises(ValueError, match="int4"):
        weight_format("int3")


ct = pytest.importorskip("compressed_tensors")


def _scheme(preset: str):
    from compressed_tensors.quantization import preset_name_to_scheme

    return preset_name_to_scheme(preset, ["Linear"])


# 192 inputs take groups of 64, as the 26B's expert down projection (704 inputs) does
@pytest.mark.parametrize(("inputs", "group"), [(256, 128), (192, 64)])
def test_int4_matches_compressed_tensors_packing_and_dequantization(inputs: int, group: int):
    from compressed_tensors.compressors import PackedQuantizationCompressor

    weight = torch.randn(48, inputs, generator=torch.Generator().manual_seed(1))
    q = weight_format("int4").quantize(weight)
    assert q.tensors["weight_scale"].shape == (48, inputs // group)
    scheme = _scheme("W4A16")
    scheme.weights.group_size = group
    theirs = PackedQuantizationCompressor.compress(
        {"weight": weight, "weight_scale": q.tensors["weight_scale"], "weight_zero_point": None}, scheme
    )
    assert torch.equal(theirs["weight_packed"].view(torch.uint8), q.tensors["weight_packed"])
    back = PackedQuantizationCompressor.decompress(theirs, scheme)["weight"]
    torch.testing.assert_close(weight_format("int4").dequantize(q, torch.float32), back.float())


def test_nvfp4_matches_compressed_tensors_packing_and_dequantization():
    from compressed_tensors.compressors import NVFP4PackedCompressor

    weight = torch.randn(32, 64, generator=torch.Generator().manual_seed(2))
    q = weight_format("nvfp4").quantize(weight)
    scheme = _scheme("NVFP4A16")
    state = {
        "weight": weight,
        "weight_scale": q.tensors["weight_scale"].float(),
        "weight_global_scale": q.tensors["weight_global_scale"],
    }
    theirs = NVFP4PackedCompressor.compress(state, scheme)
    assert torch.equal(theirs["weight_packed"], q.tensors["weight_packed"])
    assert torch.equal(theirs["weight_scale"].float(), q.tensors["weight_scale"].float())
    back = NVFP4PackedCompressor.decompress({**theirs, "weight_global_scale": state["weight_global_scale"]}, scheme)
    torch.testing.assert_close(weight_format("nvfp4").dequantize(q, back["weight"].dtype), back["weight"])
