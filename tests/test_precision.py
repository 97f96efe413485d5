import pytest

from experiments.precision import cpu_flags, resolve_precision


def test_auto_picks_bfloat16_only_where_the_hardware_computes_it_fast():
    assert resolve_precision("auto", {"avx2", "amx_bf16", "amx_tile"}, 0)[0] == "mixed_bfloat16"
    assert resolve_precision("auto", {"avx512f", "avx512_bf16"}, 0)[0] == "mixed_bfloat16"
    assert resolve_precision("auto", {"avx2", "avx512f"}, 0)[0] == "float32"
    assert resolve_precision("auto", set(), 1)[0] == "mixed_bfloat16"
    policy, reason = resolve_precision("auto", {"sse4_2"}, 0)
    assert policy == "float32" and "amx_bf16" in reason


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
