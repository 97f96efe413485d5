"""Where a saved PermaKey model's error maps put their mass, under every way of scoring a cell's prediction error.

`python -m tools.error_mass <keypointer folder> --game ms_pacman [--dataset datasets/ms_pacman_quick] [--out t.md]`

The VAE encoder and LSPN weights are the saved ones; only the per-cell error changes (permakey.lspn.error_map): metric
{rmse, mse} x normalisation {activation, image, none} x dead cells {kept, masked: error 0, to measure their share}.
The maps are stacked and min-max normalised per image as PointNet sees them (permakey.lspn.stack_error_maps). For
each encoder layer the table gives the share of the maps' mass on the ground-truth moving objects
(keypoints.metrics.mass_on_objects), in the game's HUD band (`--band`, native rows) and on dead cells (no activation
in their 3x3 neighbourhood, permakey.lspn.live_cells), over `--frames` test frames; first, the share of dead
cells inside and outside the band. Last, for the model's own maps (what its PointNet sees), where the mass lies: on
each moving object category, and in each of `--row-bands` horizontal bands of the frame (e.g. battlezone's radar and
HUD rows against its 3-D view).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from data.games import get_game
from keypoints.metrics import mass_on_objects
from permakey.keypointer import PermaKeyKeypointer
from permakey.lspn import ERROR_METRICS, ERROR_NORMALISATIONS, error_map, live_cells, stack_error_maps
from training.health import GroundTruthClip, ground_truth_clip


def masked_error_map(
    prediction: tf.Tensor, target: tf.Tensor, metric: str, normalisation: str, mask: bool
) -> tf.Tensor:
    """permakey.lspn.error_map, with dead cells' error set to 0 when `mask` (what they contribute, measured)."""
    error = error_map(prediction, target, metric, normalisation)
    return tf.where(live_cells(target), error, tf.zeros_like(error)) if mask else error


BANDS = {"ms_pacman": (173, 210)}
"""Native rows of a game's HUD band (Ms. Pac-Man: lives and score below the maze)."""


def band_rows(band: tuple[int, int] | None, size: int = 84) -> np.ndarray:
    """[size] bool: the frame rows whose pixels lie in the native row range `band` (INTER_AREA: any overlap)."""
    rows = np.zeros(size, bool)
    if band is not None:
        rows[int(np.floor(band[0] * size / 210)) : int(np.ceil(band[1] * size / 210))] = True
    return rows


def share_in_rows(maps: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """[M] the share of each map's mass (maps [T, H, W, M]) in the given rows."""
    total = maps.sum(axis=(0, 1, 2))
    return maps[:, rows].sum(axis=(0, 1, 2)) / np.maximum(total, 1e-300)


def cell_maps(keypointer: PermaKeyKeypointer, frames: np.ndarray) -> list[tuple[tf.Tensor, tf.Tensor]]:
    """The (prediction, target) cells of each chosen encoder layer for frames [T, 84, 84, 3] uint8."""
    model = keypointer.model
    activations = model.vae.encoder(tf.constant(frames, tf.float32) / 255.0, training=False)
    return [lspn(activations[layer]) for lspn, layer in zip(model.lspns, model.config.lspn_layers, strict=True)]


def dead_pixels(pairs: list[tuple[tf.Tensor, tf.Tensor]], size: int = 84) -> np.ndarray:
    """[T, size, size, M] 1.0 on the frame pixels of each layer's dead cells."""
    dead = [tf.image.resize(tf.cast(~live_cells(t), tf.float32)[..., None], (size, size), "nearest") for _, t in pairs]
    return tf.concat(dead, axis=-1).numpy()


def measure(keypointer: PermaKeyKeypointer, frames: np.ndarray, boxes: list, rows: np.ndarray) -> list[str]:
    """The table's markdown lines."""
    pairs = cell_maps(keypointer, frames)
    dead = dead_pixels(pairs)
    layers = range(dead.shape[-1])
    lines = ["| layer | dead cells in band | dead cells elsewhere |", "| --- | --- | --- |"]
    for i in layers:
        inside = dead[:, rows, :, i].mean() if rows.any() else float("nan")
        lines.append(f"| {i} | {inside:.3f} | {dead[:, ~rows, :, i].mean():.3f} |")
    header = " | ".join(f"layer {i}: objects / band / dead" for i in layers)
    lines += ["", f"| metric | normalisation | dead cells | {header} |", "|---" * (3 + len(layers)) + "|"]
    for metric, normalisation, mask in itertools.product(ERROR_METRICS, ERROR_NORMALISATIONS, (False, True)):
        errors = [masked_error_map(p, t, metric, normalisation, mask) for p, t in pairs]
        maps = stack_error_maps(errors, (84, 84)).numpy().astype(np.float64)
        objects, band = mass_on_objects(maps, boxes), share_in_rows(maps, rows)
        on_dead = (maps * dead).sum(axis=(0, 1, 2)) / np.maximum(maps.sum(axis=(0, 1, 2)), 1e-300)
        cells = " | ".join(f"{objects[i]:.3f} / {band[i]:.3f} / {on_dead[i]:.3f}" for i in layers)
        lines.append(f"| {metric} | {normalisation} | {'masked' if mask else 'kept'} | {cells} |")
    return lines


def category_boxes(clip: GroundTruthClip, moving: list[str]) -> dict[str, list[np.ndarray]]:
    """Per moving category, the clip's boxes of that category on each frame."""
    assert clip.categories is not None
    return {name: [b[c == name] for b, c in zip(clip.boxes, clip.categories, strict=True)] for name in moving}


def where_the_mass_is(maps: np.ndarray, by_category: dict[str, list[np.ndarray]], bands: int) -> list[str]:
    """Markdown lines: each map's share of mass per moving category and per horizontal band of native rows."""
    layers = range(maps.shape[-1])
    head = " | ".join(f"layer {i}" for i in layers)
    lines = [f"| where | {head} |", "|---" * (1 + len(layers)) + "|"]
    for name, boxes in by_category.items():
        share = mass_on_objects(maps, boxes)
        lines.append(f"| {name} | " + " | ".join(f"{share[i]:.3f}" for i in layers) + " |")
    edges = np.linspace(0, 210, bands + 1).round().astype(int)
    for start, stop in zip(edges[:-1], edges[1:], strict=True):
        share = share_in_rows(maps, band_rows((int(start), int(stop))))
        lines.append(f"| rows {start}-{stop} | " + " | ".join(f"{share[i]:.3f}" for i in layers) + " |")
    return lines


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a saved PermaKey keypointer (a run folder or a work folder's best/)")
    parser.add_argument("--game", default="ms_pacman")
    parser.add_argument("--dataset", help="default: datasets/<game>_quick")
    parser.add_argument("--frames", type=int, default=64, help="test frames, spread over the split")
    parser.add_argument("--band", help="native rows a:b of the HUD band (default: the game's, if known)")
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"])
    parser.add_argument("--row-bands", type=int, default=6, help="horizontal bands of the last table")
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    game = get_game(args.game)
    band = tuple(int(v) for v in args.band.split(":")) if args.band else BANDS.get(game.name)
    keras.mixed_precision.set_global_policy(args.precision)
    keypointer = PermaKeyKeypointer.load(Path(args.folder))
    clip = ground_truth_clip(args.dataset or f"datasets/{game.name}_quick", game.name, args.frames, 0.15)
    lines = measure(keypointer, clip.frames, clip.boxes, band_rows(band))  # type: ignore[arg-type]
    own = keypointer.error_maps(clip.frames).numpy().astype(np.float64)
    config = keypointer.config
    lines += [
        "",
        f"The model's own maps ({config.error_metric}, {config.error_normalisation}): share of the mass per moving"
        " category (native boxes) and per band of native rows.",
        "",
        *where_the_mass_is(own, category_boxes(clip, list(game.moving_categories)), args.row_bands),
    ]
    title = f"Error mass of {args.folder} on {len(clip.frames)} {game.name} test frames ({args.precision})"
    lines = [f"# {title}", "", "Shares of the stacked, per-image normalised maps' mass.", "", *lines]
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    return lines


if __name__ == "__main__":
    main()
