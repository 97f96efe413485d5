import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from data import generate as gen
from data import storage
from data.readers import read_episodes
from tests.conftest import held_by_another_process, tiny_config


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


def test_existing_dataset_with_other_settings_is_refused_naming_the_differing_fields(pong_dataset):
    with pytest.raises(storage.DatasetError, match=r"other settings \(seed: 0, asked 5\); choose") as error:
        gen.generate(tiny_config(seed=5), pong_dataset, workers=1, progress=False)
    assert "shard_frames" not in str(error.value)


def _copy(dataset: Path, tmp_path: Path) -> Path:
    out = tmp_path / "pong"
    shutil.copytree(dataset, out)
    return out


def _never_run(config, job, folder):
    raise AssertionError(f"{storage.shard_name(job.split, job.index)} was made again")


def test_rerunning_the_generation_remakes_a_corrupt_shard_and_keeps_the_intact_ones(
    pong_dataset, tmp_path, monkeypatch
):
    out = _copy(pong_dataset, tmp_path)
    bad, good = out / storage.shard_name("train", 1), out / storage.shard_name("train", 0)
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    mtime = good.stat().st_mtime_ns
    with pytest.raises(storage.DatasetError, match="corrupt.*rerun the `make data` command"):
        storage.verify_shards(out, storage.read_manifest(out), "train")

    real_run_job = gen._run_job
    remade = []

    def counting(config, job, folder):
        remade.append(storage.shard_name(job.split, job.index))
        return real_run_job(config, job, folder)

    monkeypatch.setattr(gen, "_run_job", counting)
    manifest = gen.generate(tiny_config(), out, workers=1, progress=False)
    assert remade == [bad.name]
    assert _shard_hashes(manifest) == _shard_hashes(storage.read_manifest(pong_dataset))
    for split in storage.SPLITS:
        storage.verify_shards(out, storage.read_manifest(out), split)
    assert good.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in pong_dataset.iterdir())
    assert not (tmp_path / "pong.partial").exists()


def test_rerunning_the_generation_replaces_a_dataset_whose_manifest_is_corrupt(pong_dataset, tmp_path):
    out = _copy(pong_dataset, tmp_path)
    (out / storage.MANIFEST).write_text('{"format": "atari-keypoint-frames", "vers')
    with pytest.raises(storage.DatasetError, match="not valid JSON.*rerun the `make data` command"):
        storage.read_manifest(out)
    manifest = gen.generate(tiny_config(), out, workers=1, progress=False)
    assert _shard_hashes(manifest) == _shard_hashes(storage.read_manifest(pong_dataset))


def test_an_intact_dataset_is_verified_and_returned_without_work(pong_dataset, tmp_path, monkeypatch):
    out = _copy(pong_dataset, tmp_path)
    monkeypatch.setattr(gen, "_run_job", _never_run)
    assert gen.generate(tiny_config(), out, workers=1, progress=False) == storage.read_manifest(pong_dataset)
    assert not (tmp_path / "pong.partial").exists()


def test_an_out_folder_with_other_files_is_refused_before_any_work(tmp_path, monkeypatch):
    out = tmp_path / "pong"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    monkeypatch.setattr(gen, "_run_job", _never_run)
    with pytest.raises(storage.DatasetError, match=r"holds files that are not a dataset's \(notes.txt\)"):
        gen.generate(tiny_config(), out, workers=1, progress=False)
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("text", ['{"name": "x"}', "null", "[1, 2]"])
def test_an_out_folder_with_a_manifest_this_project_did_not_write_is_left_alone(tmp_path, monkeypatch, text):
    out = tmp_path / "x"
    out.mkdir()
    (out / storage.MANIFEST).write_text(text)
    monkeypatch.setattr(gen, "_run_job", _never_run)
    with pytest.raises(storage.DatasetError, match=r"x holds a manifest.json this project did not write \(.*\); it is"):
        gen.generate(tiny_config(), out, workers=1, progress=False)
    assert (out / storage.MANIFEST).read_text() == text
    with pytest.raises(storage.DatasetError, match=r"manifest.json is not the manifest of a dataset made by this proj"):
        storage.read_manifest(out)


def test_a_manifest_of_this_project_lacking_fields_is_named_and_remade(pong_dataset, tmp_path):
    out = _copy(pong_dataset, tmp_path)
    manifest = json.loads((out / storage.MANIFEST).read_text())
    del manifest["generator"]
    (out / storage.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(storage.DatasetError, match=r"manifest.json lacks generator; rerun the `make data` command"):
        storage.read_manifest(out)
    remade = gen.generate(tiny_config(), out, workers=1, progress=False)
    assert _shard_hashes(remade) == _shard_hashes(storage.read_manifest(pong_dataset))


@pytest.mark.parametrize("case", ["other files", "a file", "dot"])
def test_a_refused_out_leaves_no_partial_folder_behind(tmp_path, monkeypatch, case):
    here = tmp_path / "here"
    if case == "a file":
        here.write_text("mine")
    else:
        here.mkdir()
        (here / "notes.txt").write_text("mine")
    monkeypatch.chdir(here if case == "dot" else tmp_path)
    monkeypatch.setattr(gen, "_run_job", _never_run)
    expected = r"here is a file, not a folder" if case == "a file" else r"here exists and holds files that are not a"
    with pytest.raises(storage.DatasetError, match=expected):
        gen.generate(tiny_config(), "." if case == "dot" else "here", workers=1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here"]


def test_a_second_generation_into_the_same_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(gen, "_run_job", _never_run)
    with held_by_another_process(tmp_path / "pong.partial") as pid:
        with pytest.raises(storage.FolderInUseError, match=rf"pong.partial is in use by another process \(pid {pid}\)"):
            gen.generate(tiny_config(seed=3), tmp_path / "pong", workers=1, progress=False)
    assert (tmp_path / "pong.partial" / storage.LOCK).exists()  # the other generation's folder is left alone


def test_a_worker_failure_ends_with_its_cause_disk_full(tmp_path):
    """`make data` into a 16 kB tmpfs (mounted in a user namespace of the test's own): the last line names the shard
    and the full disk, and the run is recorded FAILED."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux) to mount a small tmpfs without root")
    disk = tmp_path / "disk"
    disk.mkdir()
    command = (
        f"mount -t tmpfs -o size=16k tmpfs {disk} && exec {sys.executable} -m experiments.generate_data with "
        f"game=pong frames=300 shard_frames=100 workers=2 out={disk}/pong"
    )
    env = {**os.environ, "RUNS_DIR": str(tmp_path / "runs"), "PYTHONPATH": str(Path(__file__).parents[2])}
    done = subprocess.run(["unshare", "-rm", "sh", "-c", command], capture_output=True, text=True, env=env, timeout=300)
    if "mount" in done.stderr and "Operation not permitted" in done.stderr:
        pytest.skip(f"user namespaces are not allowed here: {done.stderr.strip()}")
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "Generating shard" in last and "No space left on device" in last, done.stderr[-3000:]
    # Sacred's traceback filter does not fail on the worker's traceback. (Whether the frames bar reached 100% first
    # depends on scheduling: the workers may generate every frame before a shard's write fails.)
    assert "IndexError" not in done.stderr
    record = json.loads(next((tmp_path / "runs").glob("*/run.json")).read_text())
    assert record["status"] == "FAILED"


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


_PARENT = """
import multiprocessing as mp, os, sys, time
from data import generate

def worker(parent, ready):
    generate._init_worker(None, parent)  # what the generation pool's initializer does
    open(ready, "w").close()
    time.sleep(120)  # busy with a shard: no check of its own runs

if __name__ == "__main__":
    child = mp.get_context("spawn").Process(target=worker, args=(os.getpid(), sys.argv[1]))
    child.start()
    print(child.pid, flush=True)
    time.sleep(120)
"""


def _gone(pid: int) -> bool:
    """Whether `pid` has exited (a zombie waiting for its new parent counts as exited)."""
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_worker_dies_with_its_killed_generation(tmp_path):
    """A kill -9 of the generating process used to leave its workers writing shards into a folder that the next run
    takes over; they get SIGKILL when their parent dies now."""
    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    ready = tmp_path / "ready"
    parent = subprocess.Popen([sys.executable, str(script), str(ready)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ready.exists() and not _gone(child)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(child)
    finally:
        parent.kill()
        parent.wait()


def test_a_worker_whose_generation_is_already_gone_exits_at_once():
    """The parent can die before the worker's prctl call: the worker checks its parent pid too."""
    code = "from data import generate; generate._init_worker(None, 1); print('still running')"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1 and "still running" not in done.stdout
    assert "Traceback" not in done.stderr  # exited as an orphan, not failed
