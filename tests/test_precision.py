import pytest

from training.precision import (
    bf16_matmul_speedup,
    cpu_flags,
    detect_precision,
    resolve_precision,
    usable_flags,
)


def never_measured() -> float:
    raise AssertionError("bfloat16 was measured where no flag or a GPU already decides")


def test_auto_picks_bfloat16_only_where_the_hardware_computes_it_fast():
    """A fast-bfloat16 flag is necessary, not sufficient: an Intel Xeon with AVX512-BF16 and no AMX multiplies
    bfloat16 matrices at 0.6x float32's speed (docs/benchmarks.md), an AMD EPYC with the same flag at 1.9x."""
    assert resolve_precision("auto", {"avx2", "amx_bf16", "amx_tile"}, 0, lambda: 3.0)[0] == "mixed_bfloat16"
    assert resolve_precision("auto", {"avx512f", "avx512_bf16"}, 0, lambda: 1.93)[0] == "mixed_bfloat16"
    policy, reason = resolve_precision("auto", {"avx512f", "avx512_bf16"}, 0, lambda: 0.60)
    assert policy == "float32" and "0.60x" in reason
    assert resolve_precision("auto", {"avx2", "avx512f"}, 0, never_measured)[0] == "float32"
    assert resolve_precision("auto", set(), 1, never_measured)[0] == "mixed_bfloat16"
    policy, reason = resolve_precision("auto", {"sse4_2"}, 0, never_measured)
    assert policy == "float32" and "amx_bf16" in reason


def test_the_bfloat16_speedup_is_a_positive_ratio_measured_once_per_process():
    speedup = bf16_matmul_speedup()
    assert 0.0 < speedup < float("inf")
    assert bf16_matmul_speedup() == speedup  # cached: every model of the process gets the same answer


def test_explicit_precisions_are_kept_and_unknown_ones_refused():
    assert resolve_precision("float32", {"amx_bf16"}, 1) == ("float32", "asked for explicitly")
    assert resolve_precision("mixed_bfloat16", set(), 0)[0] == "mixed_bfloat16"
    with pytest.raises(ValueError, match="auto"):
        resolve_precision("float16", set(), 0)


def test_cpu_flags_reads_the_flags_line(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: x\nflags\t\t: fpu sse avx512_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(cpuinfo) == {"fpu", "sse", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == set()


def test_auto_picks_float32_where_onednn_is_capped_below_bfloat16(monkeypatch):
    """ONEDNN_MAX_CPU_ISA=AVX2 on a CPU with AVX512-BF16 leaves oneDNN no bfloat16 convolution (a bfloat16 model
    fails there), so auto must pick float32; a cap at AVX512_CORE_BF16 keeps it and drops only AMX."""
    flags = {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}
    assert usable_flags(flags, None) == flags and usable_flags(flags, "ALL") == flags
    assert usable_flags(flags, "avx2") == {"avx2", "avx512f"}
    assert usable_flags(flags, "AVX512_CORE_VNNI") == {"avx2", "avx512f"}
    assert usable_flags(flags, "AVX512_CORE_BF16") == {"avx2", "avx512f", "avx512_bf16"}
    monkeypatch.setattr("training.precision.cpu_flags", lambda: flags)
    monkeypatch.setattr("training.precision.bf16_matmul_speedup", lambda: 2.0)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert detect_precision("auto")[0] == "float32"
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert detect_precision("auto")[0] == "mixed_bfloat16"


def test_a_keypointer_loads_in_bfloat16_computes_in_it_and_answers_in_float32(tmp_path):
    """The agents' frozen keypointer under precision=auto: bf16 compute, float32 weights and outputs, the global policy
    untouched, keypoints within a tenth of the frame's half-width of the float32 ones."""
    import keras
    import numpy as np

    from permakey.keypointer import PermaKeyKeypointer, build_permakey
    from tests.permakey.conftest import tiny_config
    from training.keypointers import load_keypointer

    keras.utils.set_random_seed(0)
    PermaKeyKeypointer(build_permakey(tiny_config(norm="layer"))).save(tmp_path)
    exact = load_keypointer(str(tmp_path))
    fast = load_keypointer(str(tmp_path), policy="mixed_bfloat16")
    assert keras.mixed_precision.global_policy().name == "float32"
    assert fast.model.pointnet.keynet.compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in fast.model.weights)
    frames = np.random.default_rng(0).integers(0, 256, (4, 84, 84, 3), dtype=np.uint8)
    a, b = exact(frames), fast(frames)
    for field in ("coordinates", "heatmaps", "features"):
        x, y = getattr(a, field), getattr(b, field)
        assert y.dtype == x.dtype == "float32" and y.shape == x.shape
    np.testing.assert_allclose(b.coordinates.numpy(), a.coordinates.numpy(), atol=0.1)
