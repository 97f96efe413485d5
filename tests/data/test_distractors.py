import numpy as np
import pytest
import tensorflow as tf

from data.distractors import BAR_COLOUR, BAR_WIDTH, MAX_POSITION, add_distractor_bars

PURPLE = np.array(BAR_COLOUR)


def _bars(distractors, seed=(1, 2), batch=64, dtype=tf.uint8):
    frames = tf.zeros([batch, 84, 84, 3], dtype)
    return add_distractor_bars(frames, distractors, tf.constant(seed)).numpy()


def test_vertical_bar_is_five_full_height_columns_of_the_colour():
    out = _bars("vertical")
    painted = (out == PURPLE).all(-1)  # [B, H, W]
    columns = painted.all(axis=1)  # full-height columns
    assert (columns.sum(-1) == BAR_WIDTH).all()
    assert (painted.sum((1, 2)) == BAR_WIDTH * 84).all()
    starts = columns.argmax(-1)
    assert (starts >= 0).all() and (starts <= MAX_POSITION).all()
    assert len(set(starts)) > 10  # a new position per frame


def test_horizontal_bar_is_five_full_width_rows():
    painted = (_bars("horizontal") == PURPLE).all(-1)
    rows = painted.all(axis=2)
    assert (rows.sum(-1) == BAR_WIDTH).all()
    assert (painted.sum((1, 2)) == BAR_WIDTH * 84).all()


def test_both_draws_a_cross():
    painted = (_bars("both") == PURPLE).all(-1)
    assert (painted.sum((1, 2)) == 2 * BAR_WIDTH * 84 - BAR_WIDTH * BAR_WIDTH).all()


def test_seeded():
    np.testing.assert_array_equal(_bars("both", (3, 4)), _bars("both", (3, 4)))
    assert not np.array_equal(_bars("both", (3, 4)), _bars("both", (3, 5)))


def test_float_frames_get_the_scaled_colour_and_keep_other_pixels():
    frames = tf.fill([2, 84, 84, 3], 0.25)
    out = add_distractor_bars(frames, "vertical", tf.constant([0, 0])).numpy()
    painted = np.isclose(out, PURPLE / 255.0).all(-1)
    assert (painted.sum((1, 2)) == BAR_WIDTH * 84).all()
    assert np.allclose(out[~painted], 0.25)


def test_positions_cover_the_documented_range():
    starts = (_bars("vertical", batch=4000) == PURPLE).all(-1).all(1).argmax(-1)
    assert starts.min() == 0 and starts.max() == MAX_POSITION


def test_none_is_identity_and_unknown_distractors_error():
    frames = tf.zeros([1, 84, 84, 3], tf.uint8)
    assert add_distractor_bars(frames, "none", tf.constant([0, 0])) is frames
    with pytest.raises(ValueError, match="diagonal"):
        add_distractor_bars(frames, "diagonal", tf.constant([0, 0]))
