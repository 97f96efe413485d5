"""Every documented command runs end to end at a tiny size, through Sacred with a real FileStorageObserver."""

import json

import numpy as np
import pytest
from sacred.observers import FileStorageObserver

from data.readers import frames_dataset


def test_generate_data_run_records_everything(tmp_path):
    from experiments import generate_data

    ex = generate_data.ex
    ex.observers[:] = [FileStorageObserver(str(tmp_path / "runs"))]
    out = tmp_path / "datasets" / "pong"
    run = ex.run(
        config_updates={
            "game": "pong",
            "frames": 60,
            "shard_frames": 40,
            "out": str(out),
            "workers": 1,
            "progress": False,
        }
    )
    assert run.status == "COMPLETED"
    folder = tmp_path / "runs" / str(run._id)
    assert json.loads((folder / "run.json").read_text())["status"] == "COMPLETED"
    assert (folder / "manifest.json").exists() and (folder / "ground_truth.png").stat().st_size > 1000
    metrics = json.loads((folder / "metrics.json").read_text())
    assert sum(metrics[f"{s}.frames"]["values"][0] for s in ("train", "validation", "test")) == 60
    assert next(iter(frames_dataset(out, "train", batch_size=4, seed=0))).shape == (4, 84, 84, 3)
    assert np.isclose(run.result["validation"], 3)


def test_unknown_game_fails_the_run_with_the_supported_list(tmp_path):
    from experiments import generate_data

    ex = generate_data.ex
    ex.observers[:] = []
    with pytest.raises(ValueError, match="Supported games: .*ms_pacman"):
        ex.run(config_updates={"game": "tetris", "out": str(tmp_path / "x"), "workers": 1, "progress": False})
