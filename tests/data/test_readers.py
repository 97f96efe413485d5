import numpy as np
import pytest
import tensorflow as tf

from data import storage
from data.readers import (
    frames_dataset,
    load_zoo_npz,
    pairs_dataset,
    read_episodes,
    sample_pair_indices,
    zoo_frames_dataset,
)


def test_frames_are_float_in_unit_range(pong_dataset):
    batches = list(frames_dataset(pong_dataset, "train", batch_size=32, seed=0))
    assert batches[0].shape == (32, 84, 84, 3) and batches[0].dtype == tf.float32
    assert sum(b.shape[0] for b in batches) == 120
    stacked = np.concatenate([b.numpy() for b in batches])
    assert stacked.min() >= 0.0 and stacked.max() <= 1.0 and stacked.max() > 0.5


def test_frames_shuffle_is_seeded(pong_dataset):
    def first(seed):
        return next(iter(frames_dataset(pong_dataset, "train", batch_size=8, seed=seed))).numpy()

    np.testing.assert_array_equal(first(3), first(3))
    assert not np.array_equal(first(3), first(4))


def test_pair_indices_stay_in_bounds_and_inside_episodes():
    episodes = tf.constant([7] * 30 + [8] * 3 + [9] * 50, tf.int64)
    source, target = sample_pair_indices(episodes, 1, 20, tf.constant([1, 2]))
    source, target, ids = source.numpy(), target.numpy(), episodes.numpy()
    offset = target - source
    assert (offset >= 1).all() and (offset <= 20).all()
    assert (ids[source] == ids[target]).all()
    assert len(source) == 29 + 2 + 49  # every record but each episode's last
    assert len(set(offset[ids[source] == 9])) > 10  # offsets really vary


def test_pair_indices_respect_the_minimum_offset():
    episodes = tf.constant([0] * 5 + [1] * 10, tf.int64)
    source, target = sample_pair_indices(episodes, 6, 8, tf.constant([0, 0]))
    assert (target - source).numpy().min() >= 6
    assert set(source.numpy()) == {5, 6, 7, 8}  # only episode 1 has room for offset 6


def test_pairs_come_from_one_episode(pong_dataset):
    frames = {}
    for e in read_episodes(pong_dataset, "train"):
        for f in e.frames:
            frames.setdefault(f.tobytes(), set()).add(e.id)
    pairs = list(pairs_dataset(pong_dataset, "train", batch_size=16, seed=0, shuffle=False))
    s, t = pairs[0]
    assert s.shape == t.shape == (16, 84, 84, 3)
    for a, b in zip(s.numpy(), t.numpy(), strict=False):
        a8, b8 = np.round(a * 255).astype(np.uint8), np.round(b * 255).astype(np.uint8)
        assert frames[a8.tobytes()] & frames[b8.tobytes()]


def test_corrupt_shard_is_named(pong_dataset, tmp_path):
    import shutil

    copy = tmp_path / "pong"
    shutil.copytree(pong_dataset, copy)
    shard = copy / storage.shard_name("train", 1)
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(storage.DatasetError, match=str(shard)):
        frames_dataset(copy, "train", batch_size=4, seed=0)


def test_manifest_mismatch_names_the_field(pong_dataset):
    with pytest.raises(storage.DatasetError, match="'game'.*'pong'.*'ms_pacman'"):
        frames_dataset(pong_dataset, "train", batch_size=4, seed=0, game="ms_pacman")


def test_missing_dataset_says_how_to_make_it(tmp_path):
    with pytest.raises(storage.DatasetError, match="make data"):
        frames_dataset(tmp_path / "nothing", "train", batch_size=4, seed=0)


def test_unknown_split(pong_dataset):
    with pytest.raises(storage.DatasetError, match="no split 'dev'"):
        frames_dataset(pong_dataset, "dev", batch_size=4, seed=0)


def test_zoo_npz_reader(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (5, 210, 160, 3), dtype=np.uint8)
    frames[:, :, :] = frames[:, :1, :1]  # flat colour per frame: the resize must keep it exactly
    path = tmp_path / "rollout.npz"
    np.savez(path, frames=frames, observations=np.zeros((5, 84, 84, 4), np.uint8))
    resized = load_zoo_npz(path)
    assert resized.shape == (5, 84, 84, 3) and resized.dtype == np.uint8
    np.testing.assert_array_equal(resized[:, 40, 40], frames[:, 0, 0])
    batch = next(iter(zoo_frames_dataset([path], batch_size=5, seed=0, shuffle=False)))
    np.testing.assert_allclose(batch.numpy()[:, 0, 0], frames[:, 0, 0] / 255.0, atol=1e-6)


def test_zoo_npz_reader_rejects_bad_files(tmp_path):
    np.savez(tmp_path / "keys.npz", images=np.zeros((2, 210, 160, 3), np.uint8))
    with pytest.raises(storage.DatasetError, match="'frames' and 'observations'"):
        load_zoo_npz(tmp_path / "keys.npz")
    np.savez(tmp_path / "shape.npz", frames=np.zeros((2, 84, 84, 3), np.uint8), observations=np.zeros(1))
    with pytest.raises(storage.DatasetError, match=r"\[T, 210, 160, 3\]"):
        load_zoo_npz(tmp_path / "shape.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(storage.DatasetError, match="junk.npz"):
        load_zoo_npz(tmp_path / "junk.npz")
