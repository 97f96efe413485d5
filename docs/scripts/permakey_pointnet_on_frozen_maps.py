"""Train fresh PointNets on the error maps of a saved PermaKey keypointer's frozen VAE and LSPNs; measure as they go.

`python docs/scripts/permakey_pointnet_on_frozen_maps.py <keypointer folder> --game pong [--fresh] [--sigma 0.15]
[--k 3] [--normalisation activation|image|none] [--seeds 0 1 2]`

Keypointer folders are a training's work/permakey/<name>/best, or `permakey_quick_probe.py --pictures DIR` outputs
(DIR/stepN/keypointer). The error maps of the game's quick training split are cached beside the folder
(<folder>.<normalisation>.maps.npy). Every --every steps it prints the loss (of the batch and of 512 fixed training
maps) and, on 300 frames of the test split with ground truth, frame recall@1 at the game's epsilon, motion, distinct
spots and error mass on moving objects (experiments.health). --fresh starts each seed from a new PointNet (with
--sigma, --k, --coordinates and --gain) instead of the saved one; --normalisation recomputes the error maps from the
same VAE and LSPNs (permakey.lspn.error_map).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from data.games import get_game
from data.readers import frames_dataset
from experiments.health import ground_truth_clip, keypoint_health
from permakey.keypointer import PermaKeyKeypointer, build_permakey
from permakey.model import PermaKeyConfig
from permakey.pointnet import window_loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--game", default="pong")
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--every", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--sigma", type=float, default=0.15)
    parser.add_argument("--k", type=int, default=None, help="default: the saved keypointer's K")
    parser.add_argument("--normalisation", default=None, help="default: the saved keypointer's")
    parser.add_argument(
        "--coordinates",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fresh PointNets see each pixel's (y, x) too (default: as the saved keypointer)",
    )
    parser.add_argument("--gain", type=float, default=1.0, help="a fresh PointNet's 1x1 head scaled at init")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="PointNet initialisation and batch order")
    args = parser.parse_args()
    if not args.fresh and (args.coordinates is not None or args.gain != 1.0):
        parser.error("--coordinates and --gain change a fresh PointNet: add --fresh")
    game = get_game(args.game)
    dataset = f"datasets/{game.name}_quick"
    saved = PermaKeyKeypointer.load(args.folder)
    config = dataclasses.replace(
        saved.config,
        sigma=args.sigma,
        num_keypoints=args.k or saved.config.num_keypoints,
        error_normalisation=args.normalisation or saved.config.error_normalisation,
        pointnet_coordinates=saved.config.pointnet_coordinates if args.coordinates is None else args.coordinates,
    )
    cache = Path(f"{args.folder.rstrip('/')}.{config.error_normalisation}.maps.npy")
    clip = ground_truth_clip(dataset, game.name, 300, game.epsilon or 0.15)
    changed = args.fresh or config != saved.config
    if cache.exists():
        maps = np.load(cache)
    else:  # the maps depend on the VAE, the LSPNs and the normalisation only: computed once for every seed
        frozen = copy_weights(saved, config, pointnet=False) if changed else saved
        frames = frames_dataset(dataset, "train", batch_size=64, seed=0, shuffle=False, game=game.name)
        maps = np.concatenate([frozen.error_maps(b).numpy().astype(np.float16) for b in frames])
        np.save(cache, maps)
    held = tf.constant(maps[:: max(1, len(maps) // 512)].astype(np.float32))
    for seed in args.seeds:
        keras.utils.set_random_seed(seed)
        keypointer = copy_weights(saved, config, pointnet=not args.fresh) if changed else saved
        net = keypointer.model.pointnet
        if args.fresh:
            net.keynet.head.kernel.assign(net.keynet.head.kernel * args.gain)
        optimizer = keras.optimizers.Adam(args.lr)

        @tf.function
        def step(batch: tf.Tensor, net=net, optimizer=optimizer) -> tf.Tensor:
            with tf.GradientTape() as tape:
                loss = window_loss(net(batch, training=True)["heatmaps"], batch)
            gradients = tape.gradient(loss, net.trainable_variables)
            optimizer.apply_gradients(zip(gradients, net.trainable_variables, strict=True))
            return loss

        rng = np.random.default_rng(seed)
        start = time.time()
        print(f"seed {seed} {config.error_normalisation} K={config.num_keypoints} sigma={config.sigma}")
        print(0, keypoint_health(keypointer, clip), flush=True)
        for i in range(1, args.steps + 1):
            loss = step(tf.constant(maps[rng.integers(0, len(maps), args.batch)].astype(np.float32)))
            if i % args.every == 0:
                print(
                    i,
                    f"{time.time() - start:.0f}s",
                    f"loss {float(loss):.5f} held {held_loss(net, held):.5f}",
                    keypoint_health(keypointer, clip),
                    flush=True,
                )


def copy_weights(saved: PermaKeyKeypointer, config: PermaKeyConfig, pointnet: bool) -> PermaKeyKeypointer:
    """A keypointer of `config` with the saved VAE and LSPN weights (and PointNet's, when `pointnet`); a fresh
    PointNet otherwise."""
    model = build_permakey(config)
    model.vae.set_weights(saved.model.vae.get_weights())
    for new, old in zip(model.lspns, saved.model.lspns, strict=True):
        new.set_weights(old.get_weights())
    if pointnet:
        model.pointnet.set_weights(saved.model.pointnet.get_weights())
    return PermaKeyKeypointer(model)


def held_loss(net: keras.Model, held: tf.Tensor) -> float:
    """PointNet's loss on a fixed spread of 512 training maps (no ground truth: usable to pick a refit)."""
    losses = [window_loss(net(held[i : i + 64])["heatmaps"], held[i : i + 64]) for i in range(0, len(held), 64)]
    return float(np.mean(losses))


if __name__ == "__main__":
    main()
