import numpy as np
import pytest

from keypoints.draw import draw_keypoints, keypoint_colours


def test_colours_are_distinct_and_do_not_depend_on_k():
    colours = keypoint_colours(32)
    assert colours.shape == (32, 3) and colours.dtype == np.uint8
    assert len({tuple(c) for c in colours}) == 32
    np.testing.assert_array_equal(keypoint_colours(5), colours[:5])
    np.testing.assert_array_equal(keypoint_colours(5), keypoint_colours(5))


def _frames() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 60, [2, 21, 21, 3], dtype=np.uint8)  # dark, so no pixel is a keypoint colour by chance


def test_draw_keypoints_puts_each_colour_at_its_pixel():
    frames = _frames()
    original = frames.copy()
    # (y, x) = (-1, 0) is pixel (row 0, col 10); (0.5, -0.5) is pixel (15, 5) of a 21x21 frame.
    keypoints = np.array([[[-1.0, 0.0], [0.5, -0.5]], [[0.5, -0.5], [-1.0, 0.0]]])
    scale = 4
    out = draw_keypoints(frames, keypoints, scale=scale)
    assert out.shape == (2, 84, 84, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(frames, original)
    colours = keypoint_colours(2)

    def at(b, row, col):
        return out[b, int((row + 0.5) * scale), int((col + 0.5) * scale)]

    np.testing.assert_array_equal(at(0, 0, 10), colours[0])
    np.testing.assert_array_equal(at(0, 15, 5), colours[1])
    # The same keypoint index keeps its colour in another frame, wherever it is.
    np.testing.assert_array_equal(at(1, 15, 5), colours[0])
    np.testing.assert_array_equal(at(1, 0, 10), colours[1])
    # Far from any keypoint the frame is the nearest-neighbour upscale.
    np.testing.assert_array_equal(out[0, 80:84, 80:84], np.broadcast_to(frames[0, 20, 20], (4, 4, 3)))


def test_draw_keypoints_outline_is_dark():
    frames = np.full([1, 21, 21, 3], 200, np.uint8)
    out = draw_keypoints(frames, np.zeros([1, 1, 2]), scale=4)
    centre = int(10.5 * 4)
    # Radius 4 and a one-pixel outline: the pixel 5 to the right of the centre is on the outline.
    assert out[0, centre, centre + 5].max() < 120


def test_draw_keypoints_rejects_bad_inputs():
    with pytest.raises(ValueError, match="uint8"):
        draw_keypoints(np.zeros([1, 8, 8, 3], np.float32), np.zeros([1, 1, 2]))
    with pytest.raises(ValueError, match="keypoints"):
        draw_keypoints(np.zeros([1, 8, 8, 3], np.uint8), np.zeros([2, 1, 2]))
