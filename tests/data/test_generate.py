import json

import numpy as np
import pytest

from data import generate as gen
from data import storage
from data.readers import read_episodes
from tests.conftest import tiny_config


def _shard_hashes(manifest):
    return [s["sha256"] for split in storage.SPLITS for s in manifest["splits"][split]["shards"]]


def test_manifest_describes_the_dataset(pong_dataset):
    manifest = storage.read_manifest(pong_dataset)
    assert manifest["game"] == "pong" and manifest["frame_shape"] == [84, 84, 3]
    assert manifest["splits"]["train"]["frames"] == 120
    assert {"Player", "Enemy", "Ball"} <= set(manifest["categories"])
    assert manifest["moving_categories"] == ["Player", "Enemy", "Ball"]
    assert manifest["generator"]["seed"] == 0
    assert not (pong_dataset.parent / "pong.partial").exists()


def test_same_seed_gives_identical_shards_and_another_seed_different(pong_dataset, tmp_path):
    again = gen.generate(tiny_config(), tmp_path / "again", workers=1, progress=False)
    other = gen.generate(tiny_config(seed=1), tmp_path / "other", workers=1, progress=False)
    first = storage.read_manifest(pong_dataset)
    assert _shard_hashes(again) == _shard_hashes(first)
    assert _shard_hashes(other) != _shard_hashes(first)


def test_splits_hold_whole_distinct_episodes(pong_dataset):
    ids = {split: {e.id for e in read_episodes(pong_dataset, split)} for split in storage.SPLITS}
    assert not (ids["train"] & ids["validation"]) and not (ids["train"] & ids["test"])
    for episode in read_episodes(pong_dataset, "train"):
        np.testing.assert_array_equal(episode.steps, np.arange(len(episode.steps)))
        assert episode.actions[-1] == -1 and (episode.actions[:-1] >= 0).all()


def test_parallel_workers_give_the_same_dataset(pong_dataset, tmp_path):
    manifest = gen.generate(tiny_config(), tmp_path / "two", workers=2, progress=False)
    assert _shard_hashes(manifest) == _shard_hashes(storage.read_manifest(pong_dataset))


def test_interrupted_generation_looks_unfinished_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "pong"
    real_run_job = gen._run_job
    calls = []

    def dying(config, job, folder):
        calls.append(job.number)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_run_job(config, job, folder)

    monkeypatch.setattr(gen, "_run_job", dying)
    with pytest.raises(KeyboardInterrupt):
        gen.generate(tiny_config(), out, workers=1, progress=False)
    with pytest.raises(storage.DatasetError, match="unfinished"):
        storage.read_manifest(out)
    finished = tmp_path / "pong.partial" / storage.shard_name("train", 0)
    mtime = finished.stat().st_mtime_ns

    calls.clear()
    monkeypatch.setattr(gen, "_run_job", real_run_job)
    manifest = gen.generate(tiny_config(), out, workers=1, progress=False)
    assert (out / storage.shard_name("train", 0)).stat().st_mtime_ns == mtime
    assert manifest["splits"]["train"]["frames"] == 120
    assert not list(out.glob("*.json.tmp*")) and not list(out.glob("*.tfrecord.gz.json"))


def test_existing_dataset_with_other_settings_is_refused(pong_dataset):
    with pytest.raises(storage.DatasetError, match="other settings"):
        gen.generate(tiny_config(seed=5), pong_dataset, workers=1, progress=False)


def test_diverse_pairs_are_two_frames_half_a_trajectory_apart(tmp_path):
    config = tiny_config(mode="diverse_pairs", split_frames={"train": 16, "validation": 4, "test": 4}, shard_frames=8)
    gen.generate(config, tmp_path / "pairs", workers=1, progress=False)
    episodes = list(read_episodes(tmp_path / "pairs", "train"))
    assert len(episodes) == 8
    for e in episodes:
        assert len(e.frames) == 2
        assert e.steps[0] < e.steps[1] <= config.pair_trajectory_steps
    manifest = json.loads((tmp_path / "pairs" / "manifest.json").read_text())
    assert manifest["mode"] == "diverse_pairs"


def test_nearest_distances_match_brute_force():
    rng = np.random.default_rng(0)
    buffer, queries = rng.random((20, 7)), rng.random((5, 7))
    brute = ((queries[:, None] - buffer[None]) ** 2).sum(-1)
    np.testing.assert_allclose(gen.nearest_distances(queries, buffer), brute.min(1), rtol=1e-6, atol=1e-9)
    exclude = brute.argmin(1)
    brute[np.arange(5), exclude] = np.inf
    np.testing.assert_allclose(gen.nearest_distances(queries, buffer, exclude), brute.min(1), rtol=1e-6, atol=1e-9)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="Unknown game"):
        tiny_config(game="tetris")
    with pytest.raises(ValueError, match="mode"):
        tiny_config(mode="videos")
    with pytest.raises(ValueError, match="splits"):
        tiny_config(split_frames={"training": 10})
