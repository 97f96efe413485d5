"""Shared benchmark helpers: timing, the machine's matmul peak, and FLOP counts of a traced function."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import tensorflow as tf


def rate(fn: Callable[[], Any], items: int, seconds: float = 5.0, warmup: int = 2) -> float:
    """Items per second of `fn` (called repeatedly for about `seconds` after `warmup` calls)."""
    for _ in range(warmup):
        _sync(fn())
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < seconds:
        _sync(fn())
        calls += 1
    return calls * items / (time.perf_counter() - start)


def _sync(result: Any) -> None:
    for t in tf.nest.flatten(result):
        if isinstance(t, tf.Tensor):
            t.numpy()
            return


def matmul_peak_gflops(dtype: tf.DType, n: int = 2048) -> float:
    a = tf.random.normal([n, n], dtype=tf.float32)
    a = tf.cast(a, dtype)
    f = tf.function(lambda: tf.matmul(a, a))
    return rate(f, 1, seconds=3.0) * 2 * n**3 / 1e9


def forward_flops(fn: Callable[..., Any], *args: tf.TensorSpec) -> float:
    """Floating-point operations of one call of `fn`, counted by TensorFlow's profiler on its traced graph."""
    graph = tf.function(fn).get_concrete_function(*args).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return float(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)
