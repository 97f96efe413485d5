"""Batch-1 latency of the frozen PermaKey keypointer an agent runs every step, by part and precision.

`python docs/scripts/keypointer_latency.py [--seconds 4]`

The keypointer of `make bench-agent` (the paper architecture with per-channel layer norm, K=7, untrained: the cost
does not depend on the weights), in mixed_bfloat16 and float32: the whole compiled inference, the same under XLA
(jit_compile), the VAE encoder alone, and the encoder with the LSPNs and the error maps (PointNet's KeyNet is the
rest). Milliseconds per frame.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from bench.bench_permakey import PAPER
from bench.common import rate
from experiments.precision import keras_policy, machine_summary
from permakey.keypointer import PermaKeyKeypointer, build_permakey


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    frame = tf.constant(np.random.default_rng(0).random((1, 84, 84, 3)), tf.float32)
    print(machine_summary())
    print("| precision | part | ms per frame |\n|---|---|---|")
    for policy in ("mixed_bfloat16", "float32"):
        with keras_policy(policy):
            keypointer = PermaKeyKeypointer(build_permakey(dataclasses.replace(PAPER, norm="layer", num_keypoints=7)))
        model = keypointer.model
        parts = {
            "whole keypointer": tf.function(keypointer._forward_float32),
            "whole keypointer, XLA": tf.function(keypointer._forward_float32, jit_compile=True),
            "VAE encoder": tf.function(lambda x, m=model: m.vae.encoder(x, training=False)),
            "encoder + LSPNs + error maps": tf.function(lambda x, m=model: m.error_maps(x)),
        }
        for name, fn in parts.items():
            print(f"| {policy} | {name} | {1e3 / rate(_call(fn, frame), 1, args.seconds):.2f} |", flush=True)


def _call(fn: Callable[[tf.Tensor], Any], frame: tf.Tensor) -> Callable[[], Any]:
    return lambda: fn(frame)


if __name__ == "__main__":
    main()
