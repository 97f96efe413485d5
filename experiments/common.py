"""What every Sacred experiment shares: observers and the runs/ folder.

Runs are recorded by a FileStorageObserver under `runs/` (or RUNS_DIR); set MONGO_URL (and optionally MONGO_DB) to
record into MongoDB as well, the many-machine option.
"""

from __future__ import annotations

import os

from sacred import Experiment
from sacred.observers import FileStorageObserver

RUNS_DIR = os.environ.get("RUNS_DIR", "runs")


def experiment(name: str) -> Experiment:
    ex = Experiment(name, save_git_info=False)
    ex.observers.append(FileStorageObserver(RUNS_DIR))
    if os.environ.get("MONGO_URL"):
        from sacred.observers import MongoObserver

        ex.observers.append(MongoObserver(url=os.environ["MONGO_URL"], db_name=os.environ.get("MONGO_DB", "keypoints")))
    return ex
