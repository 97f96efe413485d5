"""precision="auto": mixed bfloat16 where the hardware computes it fast, float32 elsewhere.

Measured (`make bench-permakey`, docs/benchmarks.md): on a 2-core AMD EPYC with AVX512-BF16, mixed_bfloat16 trains
PermaKey 1.65x faster than float32 (bfloat16 matrix products 1.93x); on a 2-core Intel Xeon with AVX512-BF16 and no
AMX it trains at 0.65x (matrix products 0.60x); on CPUs with neither flag at 0.15x. A flag alone does not say which,
so on a CPU with a fast-bfloat16 flag `auto` measures a matrix product in both precisions first
(`bf16_matmul_speedup`, about a second) and takes bfloat16 only when it is at least BF16_MIN_SPEEDUP faster. GPUs
compute bfloat16 natively.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterator
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


BF16_MIN_SPEEDUP = 1.25
"""The least bfloat16 / float32 matrix-product speedup for which `auto` takes mixed bfloat16 on a CPU. The two
machines measured sit far on either side (1.93 and 0.60); below it the speed gained would not pay for bfloat16's
8-bit mantissa."""


def resolve_precision(
    requested: str, flags: set[str], gpus: int, bf16_speedup: Callable[[], float] | None = None
) -> tuple[str, str]:
    """(Keras mixed-precision policy, the reason) for a requested precision, given the CPU flags and GPU count.

    "auto" resolves to mixed_bfloat16 on a GPU; on a CPU with one of FAST_BF16_FLAGS, to mixed_bfloat16 when
    `bf16_speedup()` (the measured bfloat16 / float32 matrix-product throughput; not measured without such a flag)
    is at least BF16_MIN_SPEEDUP, to float32 otherwise; an explicit policy is kept as asked.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"Unknown precision {requested!r}; choose one of {PRECISIONS}.")
    if requested != "auto":
        return requested, "asked for explicitly"
    if gpus:
        return "mixed_bfloat16", f"auto: {gpus} GPU(s) compute bfloat16 natively"
    fast = sorted(flags & set(FAST_BF16_FLAGS))
    if fast:
        speedup = (bf16_speedup or bf16_matmul_speedup)()
        verdict = "mixed_bfloat16" if speedup >= BF16_MIN_SPEEDUP else "float32"
        return verdict, (
            f"auto: the CPU has {', '.join(fast)}; its bfloat16 matrix products measured {speedup:.2f}x float32's "
            f"({'at least' if verdict != 'float32' else 'under'} {BF16_MIN_SPEEDUP})"
        )
    return "float32", f"auto: the CPU has none of {', '.join(FAST_BF16_FLAGS)} (bfloat16 would be slower)"


@functools.cache
def bf16_matmul_speedup(n: int = 1024, rounds: int = 3, products: int = 8) -> float:
    """bfloat16 / float32 throughput of an n x n matrix product on this process's CPU device: `rounds` interleaved
    rounds of `products` products in each precision, the fastest round of each (what another process's load on the
    cores disturbs least). About a second on 2 cores; measured once per process."""
    import tensorflow as tf

    with tf.device("/CPU:0"):
        a = tf.random.normal([n, n], seed=0)
        operands = {dtype: tf.cast(a, dtype) for dtype in (tf.float32, tf.bfloat16)}
        best = dict.fromkeys(operands, float("inf"))
        for x in operands.values():  # warm-up: oneDNN builds its kernels on the first call
            tf.matmul(x, x).numpy()
        for _ in range(rounds):
            for dtype, x in operands.items():
                start = time.perf_counter()
                for _ in range(products):
                    y = tf.matmul(x, x)
                y.numpy()
                best[dtype] = min(best[dtype], time.perf_counter() - start)
    return best[tf.float32] / best[tf.bfloat16]


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
