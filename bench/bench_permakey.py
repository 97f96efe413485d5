"""PermaKey throughput at the paper architecture on 84x84: `python -m bench.bench_permakey [--seconds 8]`.

Prints, for float32 and mixed bfloat16 measured in one run: training images/s (batch 32, all three modules), inference
frames/s of the keypointer at batch 1 and 32, the forward GFLOP per frame (TensorFlow profiler on the traced graph),
the achieved GFLOP/s (training counted as 3x forward) and its share of the matmul peak measured in the same run and
precision. Also the mean losses of 5 further training steps in both precisions, to check that they agree.
"""

from __future__ import annotations

import argparse

import keras
import numpy as np
import tensorflow as tf

from bench.common import forward_flops, matmul_peak_gflops, rate
from permakey.keypointer import PermaKeyKeypointer, build_permakey
from permakey.model import MODULES, paper_config
from training.precision import machine_summary

PAPER = paper_config(num_keypoints=8)
"""The paper preset's model (K 8); figures measured before it took the authors' lspn_norm="batch" and likelihood scale
sqrt(0.1) used lspn_norm="none" and 0.1."""


def measure(precision: str, seconds: float, frames: tf.Tensor) -> dict[str, float]:
    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(0)
    model = build_permakey(PAPER)
    model.compile(optimizers={name: keras.optimizers.Adam(2e-4) for name in MODULES})
    train = tf.function(model.train_step)
    keypointer = PermaKeyKeypointer(model)
    batch = frames[:32]
    result = {
        "train images/s": rate(lambda: train(batch), 32, seconds),
        "infer frames/s (batch 1)": rate(lambda: keypointer(frames[:1]).coordinates, 1, seconds),
        "infer frames/s (batch 32)": rate(lambda: keypointer(batch).coordinates, 32, seconds),
        "forward GFLOP/frame": forward_flops(
            lambda x: model(x, training=False)["keypoints"], tf.TensorSpec([1, 84, 84, 3], tf.float32)
        )
        / 1e9,
        "matmul peak GFLOP/s": matmul_peak_gflops(tf.bfloat16 if precision == "mixed_bfloat16" else tf.float32),
    }
    result["train GFLOP/s"] = result["train images/s"] * 3 * result["forward GFLOP/frame"]
    result["train share of peak"] = result["train GFLOP/s"] / result["matmul peak GFLOP/s"]
    for tracker in model.metrics:
        tracker.reset_state()
    losses = {}
    for _ in range(5):
        losses = train(batch)
    result.update({f"mean loss over the last 5 steps: {k}": float(v) for k, v in losses.items() if k != "total_loss"})
    keras.mixed_precision.set_global_policy("float32")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="timing window per measurement")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    frames = tf.constant(rng.random((32, 84, 84, 3)), tf.float32)
    results = {p: measure(p, args.seconds, frames) for p in ("float32", "mixed_bfloat16")}
    print(f"\n{machine_summary()}\n")
    print("| quantity | float32 | mixed_bfloat16 | ratio |")
    print("|---|---|---|---|")
    for key in results["float32"]:
        a, b = results["float32"][key], results["mixed_bfloat16"][key]
        print(f"| {key} | {a:,.3f} | {b:,.3f} | {b / a:.2f} |")


if __name__ == "__main__":
    main()
