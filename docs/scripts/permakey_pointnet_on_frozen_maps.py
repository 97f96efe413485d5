"""Train a PointNet on the error maps of a saved PermaKey keypointer's frozen VAE and LSPNs; measure as it goes.

`python docs/scripts/permakey_pointnet_on_frozen_maps.py <keypointer folder> --fresh [--sigma 0.15] [--k 3]`

Keypointer folders come from `permakey_quick_probe.py --pictures DIR` (DIR/stepN/keypointer). The error maps of the
pong_quick training split are cached beside the folder (<folder>.maps.npy). Every --every steps it prints the loss
and, on the test split, frame recall@1 at epsilon 0.2, motion, distinct spots and error mass on objects (as
permakey_quick_probe.py). --fresh starts from a new PointNet (with --sigma and --k) instead of the saved one.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from data.readers import frames_dataset
from experiments.health import ground_truth_clip, keypoint_health
from permakey.keypointer import PermaKeyKeypointer, build_permakey
from permakey.pointnet import window_loss

DATASET = "datasets/pong_quick"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--sigma", type=float, default=0.1)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="PointNet initialisation and batch order")
    args = parser.parse_args()
    keras.utils.set_random_seed(args.seed)
    keypointer = PermaKeyKeypointer.load(args.folder)
    cache = Path(args.folder.rstrip("/") + ".maps.npy")
    if cache.exists():
        maps = np.load(cache)
    else:
        frames = frames_dataset(DATASET, "train", batch_size=64, seed=0, shuffle=False, game="pong")
        maps = np.concatenate([keypointer.error_maps(b).numpy().astype(np.float16) for b in frames])
        np.save(cache, maps)
    if args.fresh:
        config = dataclasses.replace(keypointer.config, sigma=args.sigma, num_keypoints=args.k)
        model = build_permakey(config)
        model.vae.set_weights(keypointer.model.vae.get_weights())
        for new, old in zip(model.lspns, keypointer.model.lspns, strict=True):
            new.set_weights(old.get_weights())
        keypointer = PermaKeyKeypointer(model)
    net = keypointer.model.pointnet
    optimizer = keras.optimizers.Adam(args.lr)

    @tf.function
    def step(batch: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = window_loss(net(batch, training=True)["heatmaps"], batch)
        optimizer.apply_gradients(
            zip(tape.gradient(loss, net.trainable_variables), net.trainable_variables, strict=True)
        )
        return loss

    clip = ground_truth_clip(DATASET, "pong", 300, 0.2)
    rng = np.random.default_rng(args.seed)
    start = time.time()
    print(0, keypoint_health(keypointer, clip))
    for i in range(1, args.steps + 1):
        loss = step(tf.constant(maps[rng.integers(0, len(maps), args.batch)].astype(np.float32)))
        if i % args.every == 0:
            print(i, f"{time.time() - start:.0f}s", float(loss), keypoint_health(keypointer, clip), flush=True)


if __name__ == "__main__":
    main()
