"""Error maps of one saved PermaKey keypointer under each error normalisation (permakey.lspn.error_map), side by side.

`python docs/scripts/permakey_error_normalisations.py <keypointer folder> --game ms_pacman --out picture.png`

Rows: 4 frames spread over the game's quick test split. Columns: the frame, then layer 0 and layer 1 error maps for
"activation" (the paper's), "image" and "none". The VAE and LSPN weights are the saved ones; only the normalisation
of the per-cell error changes.
"""

from __future__ import annotations

import argparse
import dataclasses

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from data.games import get_game  # noqa: E402
from experiments.health import ground_truth_clip  # noqa: E402
from permakey.keypointer import PermaKeyKeypointer, build_permakey  # noqa: E402
from permakey.lspn import ERROR_NORMALISATIONS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--game", default="ms_pacman")
    parser.add_argument("--out", default="error_normalisations.png")
    args = parser.parse_args()
    game = get_game(args.game)
    saved = PermaKeyKeypointer.load(args.folder)
    clip = ground_truth_clip(f"datasets/{game.name}_quick", game.name, 4, game.epsilon or 0.2)
    maps = {}
    for normalisation in ERROR_NORMALISATIONS:
        model = build_permakey(dataclasses.replace(saved.config, error_normalisation=normalisation))
        model.set_weights(saved.model.get_weights())
        maps[normalisation] = PermaKeyKeypointer(model).error_maps(clip.frames).numpy()
    layers = len(saved.config.lspn_layers)
    columns = 1 + layers * len(maps)
    fig, axes = plt.subplots(len(clip.frames), columns, figsize=(2 * columns, 2 * len(clip.frames)))
    for row, frame in enumerate(clip.frames):
        axes[row, 0].imshow(frame)
        for i, (normalisation, stack) in enumerate(maps.items()):
            for layer in range(layers):
                ax = axes[row, 1 + i * layers + layer]
                ax.imshow(stack[row, ..., layer], cmap="gray", vmin=0, vmax=1)
                if row == 0:
                    ax.set_title(f"{normalisation}, layer {layer}", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(args.out, dpi=60)


if __name__ == "__main__":
    main()
