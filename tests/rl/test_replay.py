import numpy as np
import pytest

from rl.replay import SequenceReplay


def _fill(replay, lengths, ends=None):
    """Episodes of the given transition counts; frame pixel [0, 0, 0] holds the episode id, [0, 0, 1] the step."""
    for e, length in enumerate(lengths):
        for t in range(length):
            frame = np.zeros((4, 4, 3), np.uint8)
            frame[0, 0, :2] = e, t
            last = t == length - 1
            end = (ends or ["terminated"] * len(lengths))[e]
            replay.add(
                {"frame": frame, "keypoints": np.full((2, 2), t, np.float32)},
                t % 3,
                float(t),
                last and end == "terminated",
                last and end == "truncated",
            )
        final = np.zeros((4, 4, 3), np.uint8)
        final[0, 0, :2] = e, length
        replay.end_episode({"frame": final, "keypoints": np.full((2, 2), length, np.float32)})


FIELDS = {"frame": ((4, 4, 3), np.uint8), "keypoints": ((2, 2), np.float32)}


def test_windows_never_cross_episodes_and_keep_time_order():
    replay = SequenceReplay(100, FIELDS, seed=0)
    _fill(replay, [5, 3, 6])
    batch = replay.sample(64, transitions=4)
    ids, steps = batch["observations"]["frame"][:, :, 0, 0, 0], batch["observations"]["frame"][:, :, 0, 0, 1]
    assert (ids == ids[:, :1]).all()  # one episode per window
    np.testing.assert_array_equal(np.diff(steps.astype(int), axis=1), 1)
    assert set(ids[:, 0]) <= {0, 2}  # the 3-transition episode cannot hold a 4-transition window
    assert (batch["actions"] >= 0).all()
    np.testing.assert_array_equal(batch["observations"]["keypoints"][:, :, 0, 0], steps)


def test_terminal_flag_sits_on_the_last_transition_only():
    replay = SequenceReplay(100, FIELDS, seed=0)
    _fill(replay, [4], ends=["truncated"])
    batch = replay.sample(8, transitions=4)
    assert batch["truncated"][:, -1].all() and not batch["truncated"][:, :-1].any()
    assert not batch["terminated"].any()


def test_ring_overwrite_drops_broken_windows():
    replay = SequenceReplay(10, FIELDS, seed=0)
    _fill(replay, [6, 6])  # 14 rows into 10 slots: the first episode is partly overwritten
    for start in replay.valid_starts(3):
        rows = (start + np.arange(4)) % 10
        assert len(set(replay.episode[rows])) == 1
        np.testing.assert_array_equal(np.diff(replay.step[rows]), 1)
    batch = replay.sample(32, transitions=3)
    assert (np.diff(batch["observations"]["frame"][:, :, 0, 0, 1].astype(int), axis=1) == 1).all()


def test_frames_are_uint8_and_bad_frames_are_refused():
    replay = SequenceReplay(10, FIELDS, seed=0)
    with pytest.raises(ValueError, match="uint8"):
        replay.add({"frame": np.zeros((4, 4, 3), np.float32), "keypoints": np.zeros((2, 2))}, 0, 0.0, False, False)
    with pytest.raises(ValueError, match="fields"):
        replay.add({"frame": np.zeros((4, 4, 3), np.uint8)}, 0, 0.0, False, False)
    with pytest.raises(ValueError, match="No complete window"):
        replay.sample(1, transitions=2)
    assert replay.observations["frame"].dtype == np.uint8


def test_save_and_load_restore_the_same_windows(tmp_path):
    replay = SequenceReplay(20, FIELDS, seed=0)
    _fill(replay, [6, 7])
    replay.save(tmp_path / "replay.npz")
    other = SequenceReplay(20, FIELDS, seed=0)
    other.load(tmp_path / "replay.npz")
    a, b = replay.sample(16, transitions=3), other.sample(16, transitions=3)
    np.testing.assert_array_equal(a["observations"]["frame"], b["observations"]["frame"])
    np.testing.assert_array_equal(a["terminated"], b["terminated"])
    wrong = SequenceReplay(20, {"frame": ((4, 4, 3), np.uint8), "keypoints": ((3, 2), np.float32)}, seed=0)
    with pytest.raises(ValueError, match="another layout"):
        wrong.load(tmp_path / "replay.npz")


def test_abandoned_episode_keeps_its_complete_windows_only():
    replay = SequenceReplay(50, FIELDS, seed=0)
    for t in range(5):
        replay.add({"frame": np.full((4, 4, 3), t, np.uint8), "keypoints": np.zeros((2, 2))}, 0, 0.0, False, False)
    replay.abandon_episode()  # a resumed run restarts its environment here
    _fill(replay, [4])
    for start in replay.valid_starts(3):
        rows = start + np.arange(4)
        assert len(set(replay.episode[rows])) == 1


def test_kept_up_window_starts_equal_a_full_scan_through_overwrites():
    rng = np.random.default_rng(0)
    replay = SequenceReplay(23, FIELDS, seed=0)
    obs = {"frame": np.zeros((4, 4, 3), np.uint8), "keypoints": np.zeros((2, 2), np.float32)}
    replay.valid_starts(3), replay.valid_starts(5)  # start keeping both up to date from the empty replay
    for _ in range(12):
        for _ in range(int(rng.integers(1, 9))):
            replay.add(obs, 0, 0.0, False, False)
        if rng.random() < 0.3:
            replay.abandon_episode()
        else:
            replay.end_episode(obs)
        for w in (3, 5):
            np.testing.assert_array_equal(replay.valid_starts(w), np.sort(replay._scan(w)))
