"""Transporter and IMM throughput: `python -m bench.bench_transporter [--seconds 6] [--precisions float32,...]`.

For each architecture (`paper`: 128x128 input, six layers; `pkey_reimpl`: 84x84, four layers), each model
(transporter, imm) and each precision, measured in one run: training pairs/s (batch 32), keypointer inference
frames/s at batch 1 and 32, the forward GFLOP per pair (TensorFlow profiler), and the achieved training GFLOP/s
(counted as 3x forward) against the matmul peak measured in the same run and precision.
"""

from __future__ import annotations

import argparse
import dataclasses

import keras
import numpy as np
import tensorflow as tf

from bench.common import forward_flops, matmul_peak_gflops, rate
from training.precision import machine_summary
from transporter.keypointer import TransporterKeypointer
from transporter.model import TransporterConfig, build_transporter, paper_config


def benchmark_config(architecture: str, model: str = "transporter", norm: str = "batch") -> TransporterConfig:
    """The paper's model (transporter.model.paper_config) with K=7 on a named architecture, on the protocol's 84x84
    frames (the cost does not depend on the weights)."""
    return dataclasses.replace(paper_config(model, 7, architecture), norm=norm)


def measure(architecture: str, model_name: str, precision: str, seconds: float, frames: tf.Tensor) -> dict:
    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(0)
    config = benchmark_config(architecture, model_name)
    model = build_transporter(config)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    train = tf.function(model.train_step)
    keypointer = TransporterKeypointer(model)
    pair = (frames[:32], frames[32:])
    spec = tf.TensorSpec([1, 84, 84, 3], tf.float32)
    gflop = forward_flops(lambda s, t: model((s, t), training=False)["reconstruction"], spec, spec) / 1e9
    result = {
        "train pairs/s": rate(lambda: train(pair), 32, seconds),
        "infer frames/s (batch 1)": rate(lambda: keypointer(frames[:1]).coordinates, 1, seconds),
        "infer frames/s (batch 32)": rate(lambda: keypointer(frames[:32]).coordinates, 32, seconds),
        "forward GFLOP/pair": gflop,
        "matmul peak GFLOP/s": matmul_peak_gflops(tf.bfloat16 if precision == "mixed_bfloat16" else tf.float32),
    }
    result["train GFLOP/s"] = result["train pairs/s"] * 3 * gflop
    result["share of peak"] = result["train GFLOP/s"] / result["matmul peak GFLOP/s"]
    keras.mixed_precision.set_global_policy("float32")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0, help="timing window per measurement")
    parser.add_argument("--precisions", default="float32,mixed_bfloat16", help="comma-separated Keras policies")
    parser.add_argument("--architectures", default="pkey_reimpl,paper", help="comma-separated, from ARCHITECTURES")
    args = parser.parse_args()
    frames = tf.constant(np.random.default_rng(0).random((64, 84, 84, 3)), tf.float32)
    rows = []
    for architecture in args.architectures.split(","):
        for model_name in ("transporter", "imm"):
            for precision in args.precisions.split(","):
                rows.append(
                    (
                        architecture,
                        model_name,
                        precision,
                        measure(architecture, model_name, precision, args.seconds, frames),
                    )
                )
    keys = list(rows[0][3])
    print(f"\n{machine_summary()}\n")
    print("| architecture | model | precision | " + " | ".join(keys) + " |")
    print("|---" * (3 + len(keys)) + "|")
    for architecture, model_name, precision, result in rows:
        print(
            f"| {architecture} | {model_name} | {precision} | " + " | ".join(f"{result[k]:,.3f}" for k in keys) + " |"
        )


if __name__ == "__main__":
    main()
