"""Pictures of keypoints on frames (numpy + OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np

from keypoints.ops import keypoints_to_pixels

_GOLDEN_RATIO_CONJUGATE = 0.6180339887498949
_SHIFT = 4  # fractional bits of cv2 drawing coordinates: positions are drawn to 1/16 pixel
OUTLINE_COLOUR = (16, 16, 16)


def _hsv_to_rgb(hue: np.ndarray, saturation: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Elementwise HSV to RGB, all in [0, 1]: [N] each -> [N, 3] float."""
    sector = np.floor(hue * 6.0).astype(np.int64) % 6
    fraction = hue * 6.0 - np.floor(hue * 6.0)
    low = value * (1.0 - saturation)
    falling = value * (1.0 - fraction * saturation)
    rising = value * (1.0 - (1.0 - fraction) * saturation)
    # Rows: the (r, g, b) choice for each of the six hue sectors.
    candidates = np.stack([value, falling, low, rising], axis=-1)  # [N, 4]
    order = np.array([[0, 3, 2], [1, 0, 2], [2, 0, 3], [2, 1, 0], [3, 2, 0], [0, 2, 1]])
    return np.take_along_axis(candidates, order[sector], axis=-1)


def keypoint_colours(k: int) -> np.ndarray:
    """Distinct, deterministic colours for keypoint indices 0..k-1.

    Colour i depends only on i (hues stepped by the golden ratio, saturation and value cycling slowly; computed
    elementwise in numpy), so keypoint i has the same colour in every frame and every call with k >= i + 1.

    Returns:
      [k, 3] uint8 RGB.
    """
    index = np.arange(k)
    hue = (index * _GOLDEN_RATIO_CONJUGATE) % 1.0
    saturation = 1.0 - 0.275 * ((index // 6) % 3)
    value = 1.0 - 0.2 * ((index // 18) % 2)
    return np.round(_hsv_to_rgb(hue, saturation, value) * 255.0).astype(np.uint8)


def draw_keypoints(frames: np.ndarray, keypoints: np.ndarray, scale: int = 4) -> np.ndarray:
    """Frames upscaled `scale` times with each keypoint drawn as a filled circle with a dark outline.

    Keypoint k has colour keypoint_colours(K)[k]. Positions follow `keypoints_to_pixels` on the frame's size: pixel
    centre i sits at (i + 0.5) * scale in the upscaled image. Circles have radius `scale` (at least 2) plus a one-pixel
    outline.

    Args:
      frames: [B, H, W, 3] uint8 RGB; not modified.
      keypoints: [B, K, 2] (y, x) in [-1, 1], y down.
      scale: integer upscaling factor (nearest neighbour), >= 1.
    Returns:
      [B, H * scale, W * scale, 3] uint8 RGB.
    """
    frames = np.asarray(frames)
    keypoints = np.asarray(keypoints)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be [B, H, W, 3] uint8, got {frames.shape} {frames.dtype}.")
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2 or keypoints.shape[0] != frames.shape[0]:
        raise ValueError(f"keypoints must be [B, K, 2] with B = {frames.shape[0]}, got {keypoints.shape}.")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}.")
    _, height, width, _ = frames.shape
    big = np.repeat(np.repeat(frames, scale, axis=1), scale, axis=2)  # a new array: the input is left untouched
    colours = keypoint_colours(keypoints.shape[1])
    centres = (keypoints_to_pixels(keypoints, height, width) + 0.5) * scale  # [B, K, 2] (row, col)
    fixed = np.round(centres * (1 << _SHIFT)).astype(np.int64)
    radius = max(scale, 2)
    for b in range(big.shape[0]):
        image = np.ascontiguousarray(big[b])
        for k in range(keypoints.shape[1]):
            if not np.isfinite(centres[b, k]).all():
                continue
            centre = (int(fixed[b, k, 1]), int(fixed[b, k, 0]))  # cv2 wants (x, y)
            colour = tuple(int(c) for c in colours[k])
            cv2.circle(image, centre, (radius + 1) << _SHIFT, OUTLINE_COLOUR, -1, cv2.LINE_AA, _SHIFT)
            cv2.circle(image, centre, radius << _SHIFT, colour, -1, cv2.LINE_AA, _SHIFT)
        big[b] = image
    return big
