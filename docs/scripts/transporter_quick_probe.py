"""The diagnostic behind docs/transporter_quick.md: do quick-sized Transporter runs on Pong learn moving keypoints?

    PYTHONPATH=. python docs/scripts/transporter_quick_probe.py train --name b4_layer --batch 4 --norm layer
    PYTHONPATH=. python docs/scripts/transporter_quick_probe.py gradient
    PYTHONPATH=. python docs/scripts/transporter_quick_probe.py squares --steps 600

`train` trains one variant on datasets/pong_quick (what `make train-transporter GAME=pong PRESET=quick` makes) and
every `--every` steps prints the loss, frame-level precision/recall at epsilon 0.2 and the keypoints' motion and
distinct spots on 300 frames of datasets/pong_eval (`make eval-keypoints GAME=pong` makes it). `gradient` trains
400 steps (batch 8, layer norm) and prints the copy-the-source loss beside the model's, the gradient of the loss with
respect to the target keypoints, and how peaked the keypoint softmax is. `squares` trains the same quick-sized model
(K=3, layer norm, batch 8) on synthetic pairs, three squares (`--size`, default 8 pixels) of distinct colours that
jump up to 15 pixels on a brown background, and every 100 steps prints, per square, how far the nearest keypoint is
(median over 64 pairs): Pong's objects with the pixel count turned up, to see whether and when keypoints find moving
objects at all.
"""

from __future__ import annotations

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from data.games import get_game
from data.readers import pairs_dataset
from experiments import eval_keypoints
from experiments.train_transporter import ARCHITECTURES
from keypoints.metrics import collapse_statistics, frame_precision_recall
from keypoints.ops import keypoints_to_maps
from transporter.keypointer import TransporterKeypointer
from transporter.model import TransporterConfig, build_transporter, reconstruction_loss, transport


def model(norm: str, sigma: float, lr: float):
    keras.utils.set_random_seed(0)
    arch = ARCHITECTURES["pkey_reimpl"]
    config = TransporterConfig(
        "transporter", 3, (84, 84, 3), 84, tuple(arch["filters"]), tuple(arch["kernels"]), tuple(arch["strides"]),
        norm, sigma, "features",
    )  # fmt: skip
    m = build_transporter(config)
    m.compile(optimizer=keras.optimizers.Adam(lr))
    return m


def pairs(batch: int):
    return pairs_dataset("datasets/pong_quick", "train", batch_size=batch, seed=0, game="pong", drop_remainder=True)


def train(a: argparse.Namespace) -> None:
    m = model(a.norm, a.sigma, a.lr)
    episodes, truth, _ = eval_keypoints.test_episodes("datasets/pong_eval", get_game("pong"), 300)
    frames = np.concatenate([e.frames for e in episodes])[:300]
    positions = [t[1] for per_episode in truth for t in per_episode][:300]
    keypointer, step, start = TransporterKeypointer(m), 0, time.time()
    batches, train_step = iter(pairs(a.batch).repeat()), tf.function(m.train_step)
    while step < a.steps:
        for _ in range(a.every):
            out = train_step(next(batches))
            step += 1
        detected = eval_keypoints.detect(keypointer, frames, "none", 0, "keypointer")
        pr, stats = frame_precision_recall(detected, positions, 0.2), collapse_statistics(detected)
        print(
            f"{a.name} step {step} ({time.time() - start:.0f} s): loss {float(out['loss']):.5f} recall "
            f"{pr['recall']:.3f} precision {pr['precision']:.3f} motion {stats['motion']:.3f} distinct "
            f"{stats['distinct']:.2f}",
            flush=True,
        )
        m.loss_tracker.reset_state()


def gradient(a: argparse.Namespace) -> None:
    m = model("layer", 0.1, 1e-3)
    batches, train_step = iter(pairs(8).repeat()), tf.function(m.train_step)
    for _ in range(400):
        train_step(next(batches))
    source, target = next(batches)
    maps = m.keynet(target, training=False)
    peak = tf.reduce_max(tf.nn.softmax(tf.reduce_mean(maps, 2), 1), 1)
    target_keypoints, _ = m.keypoints(target)
    _, source_maps = m.keypoints(source)
    source_features, target_features = m.features(source), m.features(target)
    with tf.GradientTape() as tape:
        tape.watch(target_keypoints)
        target_maps = keypoints_to_maps(target_keypoints, 42, 42, 0.1)
        loss = reconstruction_loss(
            m.refine(transport(source_features, target_features, source_maps, target_maps)), target
        )
    grad = tape.gradient(loss, target_keypoints)
    print(f"loss {float(loss):.6f}, copy-the-source loss {float(tf.reduce_mean(tf.square(source - target))):.6f}")
    print("gradient norm per keypoint:", np.linalg.norm(grad.numpy(), axis=-1).mean(0))
    print("peak of the y softmax per keypoint:", peak.numpy().mean(0))


def square_pairs(rng: np.random.Generator, n: int, size: int = 8):
    """n (source, target) pairs of three coloured squares on brown, and the target squares' centres [n, 3, 2]."""
    colours = np.array([[1.0, 0.3, 0.3], [0.3, 1.0, 0.3], [0.3, 0.3, 1.0]], np.float32)
    frames = np.empty((2, n, 84, 84, 3), np.float32)
    frames[:] = np.array([0.4, 0.22, 0.09], np.float32)
    corners = rng.integers(0, 84 - size, (n, 3, 2))
    moved = np.clip(corners + rng.integers(-15, 16, (n, 3, 2)), 0, 84 - size)
    for i in range(n):
        for which, at in enumerate((corners, moved)):
            for (y, x), colour in zip(at[i], colours, strict=True):
                frames[which, i, y : y + size, x : x + size] = colour
    centres = (moved + (size - 1) / 2) / 83 * 2 - 1
    return (tf.constant(frames[0]), tf.constant(frames[1])), centres


def squares(a: argparse.Namespace) -> None:
    m = model("layer", 0.1, 1e-3)
    rng, held_out = np.random.default_rng(0), square_pairs(np.random.default_rng(99), 64, a.size)
    train_step, start = tf.function(m.train_step), time.time()
    for step in range(1, a.steps + 1):
        out = train_step(square_pairs(rng, 8, a.size)[0])
        if step % 100 == 0:
            keypoints = m(held_out[0])["target_keypoints"].numpy()  # [64, K, 2]
            distance = np.linalg.norm(held_out[1][:, :, None] - keypoints[:, None], axis=-1).min(-1)  # [64, squares]
            print(
                f"squares step {step} ({time.time() - start:.0f} s): loss {float(out['loss']):.5f}, nearest keypoint "
                f"to the red / green / blue square {' / '.join(f'{d:.3f}' for d in np.median(distance, 0))}",
                flush=True,
            )
            m.loss_tracker.reset_state()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--name", default="variant")
    t.add_argument("--batch", type=int, default=4)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--norm", default="batch")
    t.add_argument("--sigma", type=float, default=0.1)
    t.add_argument("--steps", type=int, default=1500)
    t.add_argument("--every", type=int, default=500)
    sub.add_parser("gradient")
    q = sub.add_parser("squares")
    q.add_argument("--steps", type=int, default=600)
    q.add_argument("--size", type=int, default=8, help="side of the squares in pixels")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow's intra-op threads (0: all cores)")
    a = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(a.threads)
    {"train": train, "gradient": gradient, "squares": squares}[a.command](a)


if __name__ == "__main__":
    main()
