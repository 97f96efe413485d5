import numpy as np
import pytest
from scipy import stats

from keypoints.metrics import grid_to_frame
from keypoints.motion import MotionKeypointer, component_centroids


def _square_frames(t=40, size=4):
    """A static background (blue) with a bright size x size square moving down-right; its centroid per frame."""
    background = np.zeros((84, 84, 3), np.uint8)
    background[..., 2] = 80
    background[60:70, 5:15] = (200, 30, 30)  # a static object: part of the background, never a keypoint
    frames, centres = [], []
    for i in range(t):
        row, col = 10 + i, 20 + i // 2
        frame = background.copy()
        frame[row : row + size, col : col + size] = 220
        frames.append(frame)
        centres.append([row + (size - 1) / 2, col + (size - 1) / 2])
    return np.stack(frames), np.array(centres)


def test_the_motion_baseline_finds_a_moving_square_on_a_static_background():
    frames, centres = _square_frames()
    baseline = MotionKeypointer(num_keypoints=3, window=32)
    keypoints = grid_to_frame(baseline.track(frames), *baseline.geometry)  # as the evaluation maps them
    assert keypoints.shape == (40, 3, 2)
    assert np.all(keypoints[0] == 0.0)  # no background before the first frame: every keypoint at the centre
    expected = centres / 83 * 2 - 1  # pixel-centre convention, (y, x) in [-1, 1]
    error = np.linalg.norm(keypoints - expected[:, None], axis=-1).max(axis=1) * 83 / 2  # pixels, worst keypoint
    # A pixel is under the square in at most 4 consecutive frames, so once the window holds 8 frames the mode is the
    # background: one component, the square, found at its exact centroid, the spare keypoints repeating it.
    assert error[8:].max() < 1e-9
    assert error[2:8].max() < 2.0  # before, the square's own recent pixels still vote in the mode: off by < 2 pixels
    baseline.reset()
    again = baseline.track(frames[10:13])
    assert np.all(again[0] == 0.0)  # reset forgets the window: the first frame again has no background


def test_the_background_is_the_per_pixel_mode_of_the_window():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 3, (9, 84, 84, 3)).astype(np.uint8)
    baseline = MotionKeypointer(2, window=5)
    for frame in frames:
        baseline.step(frame)
    expected = stats.mode(frames[-5:], axis=0, keepdims=False).mode  # ties to the smaller value, as scipy's
    assert np.array_equal(baseline.background(), expected)


def test_components_are_ranked_by_size_and_float_frames_are_accepted():
    mask = np.zeros((84, 84), bool)
    mask[0:2, 0:2] = True  # 4 pixels
    mask[40:43, 40:43] = True  # 9 pixels
    assert np.array_equal(component_centroids(mask, 5), [[41.0, 41.0], [0.5, 0.5]])
    frames, _ = _square_frames(t=5)
    as_uint8 = MotionKeypointer(2).track(frames)
    assert np.array_equal(MotionKeypointer(2).track(frames / 255.0), as_uint8)
    with pytest.raises(ValueError, match="shape"):
        MotionKeypointer(2).step(np.zeros((84, 84), np.uint8))
