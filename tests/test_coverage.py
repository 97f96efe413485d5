"""The coverage figures of bench.coverage: cells, player motion and moving objects from recorded ground truth."""

import numpy as np

from bench import coverage
from data.atari import Objects


def _objects(*items):
    """Objects from (category, x, y) with 2x2 boxes whose centres are (x + 1, y + 1)."""
    return Objects(
        categories=np.array([c for c, _, _ in items], np.int32),
        boxes=np.array([(x, y, 2, 2) for _, x, y in items], np.float32).reshape(-1, 4),
    )


def test_player_cells_and_motion_skip_frames_without_a_player():
    frames = [_objects((0, 0, 0)), _objects((1, 50, 50)), _objects((0, 0, 0)), _objects((0, 20, 0))]
    centres = coverage.player_centres(frames, 0)
    assert np.isnan(centres[1]).all()
    assert coverage.cells(centres) == {(0, 0), (1, 0)}  # centres (1, 1) twice and (21, 1)
    assert coverage.moved_pairs(centres) == (1, 1)  # only frames 2 -> 3 have the player in both
    assert coverage.cells(coverage.player_centres(frames, None)) == set()


def test_an_object_moved_when_no_object_of_its_category_was_where_it_is():
    keep = np.array([True, True, False])
    before = _objects((0, 10, 10), (1, 30, 30), (2, 5, 5))
    after = _objects((0, 10, 10), (1, 31, 30), (1, 10, 10), (2, 6, 5))
    assert coverage.moving_counts(before, after, keep) == (3, 2)  # category 2 is scenery: not counted
    assert coverage.moving_counts(None, after, keep) == (3, 3)


def test_measure_reads_a_generated_dataset(pong_dataset):
    row = coverage.measure(pong_dataset)
    assert (row.game, row.policy, row.frames) == ("pong", "uniform", 120)
    assert row.player_cells is not None and row.player_cells >= 1
    assert sum(row.ended_lengths) + sum(row.cut_lengths) == 120
    assert len(coverage.table([row])) == 3
