"""Noisy Atari distractors (PermaKey paper, section 5.2 / Table 2; docs/method.md section 3.9).

A 5-pixel-wide opaque bar of colour (128, 0, 255) drawn on the 84x84 frame: vertical, horizontal, or one of each,
at a uniformly random position redrawn every frame. Positions are uniform in [0, 78] as in the authors' code.
One word names them everywhere: `distractors` (one of DISTRACTORS) in function arguments, every experiment's config
and `make ... DISTRACTORS=`; runs and work folders recorded before it said `noise` (experiments.common.current_names).
"""

from __future__ import annotations

import tensorflow as tf

DISTRACTORS = ("none", "vertical", "horizontal", "both")
"""The distractor settings: no bars, a vertical bar, a horizontal bar, or one of each."""
BAR_WIDTH = 5
BAR_COLOUR = (128, 0, 255)
MAX_POSITION = 78


def check_distractors(distractors: str) -> str:
    """`distractors` if it is one of DISTRACTORS, else a ValueError naming the choices."""
    if distractors not in DISTRACTORS:
        raise ValueError(f"Unknown distractors {distractors!r}; choose one of {DISTRACTORS}.")
    return distractors


def add_distractor_bars(frames: tf.Tensor, distractors: str, seed: tf.Tensor) -> tf.Tensor:
    """Draws the bars on `frames`.

    Args:
      frames: [..., H, W, 3], uint8 in [0, 255] or float in [0, 1] (the colour is scaled to match).
      distractors: one of DISTRACTORS.
      seed: [2] int32/int64 stateless seed; the same seed draws the same positions.
    Returns:
      frames of the same shape and dtype, each with its own bar positions.
    """
    check_distractors(distractors)
    if distractors == "none":
        return frames
    frames = tf.convert_to_tensor(frames)
    shape = tf.shape(frames)
    batch_shape = shape[:-3]
    height, width = shape[-3], shape[-2]
    colour = tf.constant(BAR_COLOUR, tf.float32)
    if frames.dtype.is_floating:
        colour = colour / 255.0
    colour = tf.cast(colour, frames.dtype)
    positions = tf.random.stateless_uniform(
        tf.concat([batch_shape, [2]], 0), seed=seed, minval=0, maxval=MAX_POSITION + 1, dtype=tf.int32
    )
    expand = tf.concat([batch_shape, [1, 1]], 0)
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    mask = tf.zeros(expand, tf.bool)
    if distractors in ("vertical", "both"):
        x = tf.reshape(positions[..., 0], expand)
        mask |= (cols >= x) & (cols < x + BAR_WIDTH) & (rows >= 0)
    if distractors in ("horizontal", "both"):
        y = tf.reshape(positions[..., 1], expand)
        mask |= (rows >= y) & (rows < y + BAR_WIDTH) & (cols >= 0)
    return tf.where(mask[..., None], colour, frames)
