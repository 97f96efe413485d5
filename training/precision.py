"""precision="auto": mixed bfloat16 where the hardware computes it fast, float32 elsewhere.

Measured (`make bench-permakey`, docs/benchmarks.md): on CPUs with AMX or AVX512-BF16,
mixed_bfloat16 trains PermaKey 1.6-1.8x faster than float32; on CPUs with neither it runs at 0.15x. GPUs compute
bfloat16 natively.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

PRECISIONS = ("auto", "float32", "mixed_bfloat16")
FAST_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
"""/proc/cpuinfo flags of x86 CPUs with fast bfloat16 matrix arithmetic."""


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo is missing or has none)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


ONEDNN_ISA_CAP = "ONEDNN_MAX_CPU_ISA"
"""oneDNN's environment variable that caps the instruction sets its kernels use (TensorFlow's CPU convolutions and
matrix products run on oneDNN). Capped below AVX512_CORE_BF16 (for example `ONEDNN_MAX_CPU_ISA=AVX2`, to see how a
machine without AVX-512 runs), oneDNN has no bfloat16 convolution at all: a model computing in bfloat16 fails."""
_BELOW_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")
_BELOW_AMX = (*_BELOW_BF16, "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512")


def usable_flags(flags: set[str], isa_cap: str | None) -> set[str]:
    """The CPU flags that oneDNN may use under its cap `isa_cap` (ONEDNN_MAX_CPU_ISA; None or unknown: no cap)."""
    cap = (isa_cap or "").strip().upper()
    if cap in _BELOW_BF16:
        return flags - set(FAST_BF16_FLAGS)
    if cap in _BELOW_AMX:
        return flags - {"amx_bf16"}
    return set(flags)


def resolve_precision(requested: str, flags: set[str], gpus: int) -> tuple[str, str]:
    """(Keras mixed-precision policy, the reason) for a requested precision, given the CPU flags and GPU count.

    "auto" resolves to mixed_bfloat16 on a GPU or a CPU with one of FAST_BF16_FLAGS, to float32 otherwise; an explicit
    policy is kept as asked.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"Unknown precision {requested!r}; choose one of {PRECISIONS}.")
    if requested != "auto":
        return requested, "asked for explicitly"
    if gpus:
        return "mixed_bfloat16", f"auto: {gpus} GPU(s) compute bfloat16 natively"
    fast = sorted(flags & set(FAST_BF16_FLAGS))
    if fast:
        return "mixed_bfloat16", f"auto: the CPU has {', '.join(fast)}"
    return "float32", f"auto: the CPU has none of {', '.join(FAST_BF16_FLAGS)} (bfloat16 would be slower)"


def detect_precision(requested: str) -> tuple[str, str]:
    """resolve_precision on this machine's CPU flags (those that oneDNN's ISA cap leaves it) and visible GPUs."""
    import tensorflow as tf

    flags = usable_flags(cpu_flags(), os.environ.get(ONEDNN_ISA_CAP))
    return resolve_precision(requested, flags, len(tf.config.list_physical_devices("GPU")))


@contextlib.contextmanager
def keras_policy(policy: str) -> Iterator[None]:
    """Builds the layers made inside the block under Keras policy `policy` (a resolved one, not "auto"); the previous
    global policy is back afterwards. Layers keep the policy they were built with."""
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def machine_summary(requested: str = "auto") -> str:
    """One line for benchmark tables: the CPU model, its fast-bfloat16 flags, the cores and what `requested`
    resolves to here."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cap = os.environ.get(ONEDNN_ISA_CAP)
    flags = sorted(usable_flags(cpu_flags(), cap) & set(FAST_BF16_FLAGS)) or ["none of " + ", ".join(FAST_BF16_FLAGS)]
    if cap:
        flags.append(f"oneDNN capped at {cap}")
    policy, reason = detect_precision(requested)
    return (
        f"{model}; fast-bfloat16 flags: {', '.join(flags)}; {os.cpu_count()} cores; "
        f"precision={requested} resolves to {policy} ({reason})"
    )
