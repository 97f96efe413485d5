"""Fresh PointNets on the frozen error maps of one saved PermaKey model, one per way of scoring a cell's error: a
same-seed A/B of error-map choices without retraining the VAE and LSPNs (which no error-map choice changes: the maps
are PointNet's stop-gradient targets only).

`python -m tools.refit_variants <joint keypointer folder> --game ms_pacman --out DIR
    --variants mse:activation mse:image mse:none [--seeds 0 1] [--steps 600]`

Each variant is metric:normalisation (permakey.lspn.error_map). Every variant and seed trains a PointNet with
the refit of training/permakey_training.py (fresh_pointnet, train_pointnet: the same initialisation and batch order
for a seed under every variant) on the training split's maps, prints its keypoint motion on the validation frames and
saves the keypointer to DIR/<variant>-s<seed>, ready for `make eval-keypoints RUNS=...`.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from data.games import get_game
from permakey.keypointer import PermaKeyKeypointer
from permakey.model import PermaKeyConfig
from training.keypoint_training import DataSettings
from training.permakey_training import (
    VALIDATION_FRAMES,
    Optimization,
    PermaKeyTraining,
    fresh_pointnet,
    train_pointnet,
    validation_motion,
)


class Quiet:
    """Stands in for a Sacred run: the refit's scalars are printed, not recorded."""

    def log_scalar(self, name: str, value: float, step: int) -> None:
        print(f"  {name} {value:.5f} at {step}")


def variant_config(base: PermaKeyConfig, variant: str) -> PermaKeyConfig:
    """`base` with the error map of `variant` (metric:normalisation)."""
    parts = variant.split(":")
    if len(parts) != 2:
        raise ValueError(f"A variant is metric:normalisation, got {variant!r}.")
    return dataclasses.replace(base, error_metric=parts[0], error_normalisation=parts[1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="the joint training's keypointer (a work folder's best/)")
    parser.add_argument("--game", default="ms_pacman")
    parser.add_argument("--dataset", help="default: datasets/<game>_quick")
    parser.add_argument("--out", required=True)
    parser.add_argument("--variants", nargs="+", default=["mse:activation", "mse:image", "mse:none"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args(argv)
    game = get_game(args.game)
    joint = PermaKeyKeypointer.load(Path(args.folder)).model
    training = PermaKeyTraining(
        config=joint.config,
        optimization=Optimization(args.lr, args.lr, 10_000, 0.85),
        work=Path(args.out),
        refit_steps=args.steps,
        refit_restarts=max(args.seeds) + 1,
        refit_normalisations=(joint.config.error_normalisation,),
        refit_batch_size=args.batch,
        picture_frames=1,
        log_every=max(args.steps // 3, 1),
        progress=False,
    )
    dataset = args.dataset or f"datasets/{game.name}_quick"
    data = DataSettings(
        dataset=dataset,
        game=game,
        frames=3000,
        generate_missing=False,
        policy="uniform",
        change_probability=1.0,
        distractors="none",
        batch_size=args.batch,
        seed=0,
    )
    frames = training.read(data, "train", training=False)
    validation = training.read(data, "validation", training=False).unbatch().take(VALIDATION_FRAMES)
    held_out = next(iter(validation.batch(VALIDATION_FRAMES))).numpy()
    for variant in args.variants:
        config = variant_config(joint.config, variant)
        maps = None
        for seed in args.seeds:
            start = time.time()
            model = fresh_pointnet(joint, config, training.optimization, data.seed + 1 + seed)
            if maps is None:
                maps = frames.map(model.error_maps).unbatch().cache()
            train_pointnet(model, maps, training, data, seed, Quiet())
            motion = validation_motion(PermaKeyKeypointer(model), held_out)
            PermaKeyKeypointer(model).save(Path(args.out) / f"{variant.replace(':', '-')}-s{seed}")
            print(f"{variant} seed {seed}: motion {motion:.4f} ({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
