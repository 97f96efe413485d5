"""Probe quick PermaKey on a game: train step by step and measure, every few steps, what the method is about.

`python docs/scripts/permakey_quick_probe.py --game pong --steps 600 --every 100 [--set learning_rate=1e-3 ...]`

Uses experiments.train_permakey's config (the quick preset plus --set overrides) and its dataset; prints, per
checkpoint, the losses (PointNet's also with another frame's keypoints) and experiments.health.keypoint_health on
--frames test frames: keypoint motion and distinct spots, frame recall@1 at the game's epsilon against OCAtari ground
truth, and the share of each error map's mass on moving objects.
"""

from __future__ import annotations

import argparse
import ast
import time
from pathlib import Path

import keras
import tensorflow as tf

from data.games import get_game
from data.readers import frames_dataset
from experiments import train_permakey as tp
from experiments.health import ground_truth_clip, keypoint_health
from experiments.precision import detect_precision
from permakey.keypointer import PermaKeyKeypointer, build_permakey


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--game", default="pong")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--frames", type=int, default=300, help="test frames measured")
    parser.add_argument("--pictures", default="", help="folder for keypoints/error-map pictures at each checkpoint")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides key=value (Python literals)")
    args = parser.parse_args()
    run = tp.ex.run("print_config", named_configs=["quick"], config_updates={"game": args.game})
    c = dict(run.config)
    for item in args.set:
        key, value = item.split("=", 1)
        c[key] = ast.literal_eval(value)
    print({k: c[k] for k in ("learning_rate", "pointnet_learning_rate", "batch_size", "norm", "sigma", "precision")})
    keras.utils.set_random_seed(c["seed"])
    keras.mixed_precision.set_global_policy(detect_precision(c["precision"])[0])
    game = get_game(c["game"])
    tp.ensure_dataset(c["dataset"], c["game"], c["data_frames"], c["seed"], True, False)
    train = frames_dataset(
        c["dataset"], "train", batch_size=c["batch_size"], seed=c["seed"], game=game.name, drop_remainder=True
    ).repeat()
    model = build_permakey(tp.model_config(c))
    model.compile(optimizers=tp.optimizers(c))
    step = tf.function(model.train_step)
    keypointer = PermaKeyKeypointer(model)
    clip = ground_truth_clip(c["dataset"], game.name, args.frames, game.epsilon or 0.15)
    start = time.time()
    for i, batch in enumerate(train.take(args.steps), start=1):
        logs = step(batch)
        if i % args.every == 0:
            logs = {k: round(float(v), 5) for k, v in logs.items()}
            for t in model.metrics:
                t.reset_state()
            print(
                i,
                f"{time.time() - start:.0f}s",
                logs,
                keypoint_health(keypointer, clip),
                flush=True,
            )
            if args.pictures:
                folder = Path(args.pictures) / f"step{i}"
                folder.mkdir(parents=True, exist_ok=True)
                tp.save_pictures(keypointer, clip.frames[:: max(1, len(clip.frames) // 8)][:8], folder)
                keypointer.save(folder / "keypointer")


if __name__ == "__main__":
    main()
