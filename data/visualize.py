"""Pictures of frames with their ground-truth objects."""

from __future__ import annotations

import cv2
import numpy as np

from data.atari import FRAME_SHAPE, NATIVE_SHAPE, Objects


def native_to_frame(xy: np.ndarray) -> np.ndarray:
    """Maps native (x, y) pixel positions (160x210 screen) to continuous positions on the 84x84 frame.

    Pixel centres are aligned: native pixel i covers [i, i+1), so a position p maps to p * 84 / size on both axes
    (the resize averages areas, INTER_AREA, so no half-pixel shift is needed for positions given as edges).
    """
    scale = np.array([FRAME_SHAPE[1] / NATIVE_SHAPE[1], FRAME_SHAPE[0] / NATIVE_SHAPE[0]], np.float32)
    return np.asarray(xy, np.float32) * scale


def _colour(index: int) -> tuple[int, int, int]:
    hue = int(index * 47) % 180
    rgb = cv2.cvtColor(np.array([[[hue, 220, 255]]], np.uint8), cv2.COLOR_HSV2RGB)[0, 0]
    return int(rgb[0]), int(rgb[1]), int(rgb[2])


def draw_objects(frame: np.ndarray, objects: Objects, keep: np.ndarray | None = None, scale: int = 4) -> np.ndarray:
    """The frame upscaled `scale` times with each object's box drawn, coloured by category.

    Args:
      frame: [84, 84, 3] uint8.
      keep: [num_categories] bool, which categories to draw (all when None).
    """
    big = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    for category, box in zip(objects.categories, objects.boxes, strict=False):
        if keep is not None and not keep[category]:
            continue
        top_left = native_to_frame(box[:2]) * scale
        bottom_right = native_to_frame(box[:2] + box[2:]) * scale
        cv2.rectangle(
            big,
            tuple(int(v) for v in np.floor(top_left)),
            tuple(int(v) for v in np.ceil(bottom_right)),
            _colour(int(category)),
            1,
        )
    return big


def grid(images: list[np.ndarray], columns: int) -> np.ndarray:
    """Tiles equally sized images into rows of `columns`, padding the last row with black."""
    rows = -(-len(images) // columns)
    blank = np.zeros_like(images[0])
    images = images + [blank] * (rows * columns - len(images))
    return np.concatenate([np.concatenate(images[r * columns : (r + 1) * columns], 1) for r in range(rows)], 0)


def save_png(path: str, image: np.ndarray) -> None:
    if not cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"Could not write {path}.")
