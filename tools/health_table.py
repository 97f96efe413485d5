"""The per-epoch health of keypoint-model runs as one markdown table: `python -m tools.health_table runs/12 [runs/13]`.

Every keypoint run (PermaKey, Transporter, IMM) logs its health each epoch on a fixed clip of test frames
(training/health.py): keypoint recall beside the same keypoints held still, motion, distinct spots, and for PermaKey
the share of each error map's mass on the moving objects. This prints them, one row per run and epoch, with the
training steps reached (epoch x steps per epoch, where the run set them), the minutes since the run started and the
validation loss the run monitors, so that a long training can be followed while it runs and read afterwards.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import pandas as pd

from training.tables import markdown_table

HEALTH = {
    "keypoint_recall": "recall",
    "keypoint_recall_held_still": "held still",
    "keypoint_motion": "motion",
    "keypoint_distinct": "distinct",
}
"""training/health.py's metrics (epoch.<name>) and their column names; error_mass_on_objects.<i> follow."""


def _time(stamp: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(stamp)


def health_table(folder: str | Path) -> pd.DataFrame:
    """One row per finished epoch of the Sacred run in `folder` (its run.json, config.json and metrics.json)."""
    folder = Path(folder)
    try:
        run = json.loads((folder / "run.json").read_text())
        config = json.loads((folder / "config.json").read_text())
        metrics = json.loads((folder / "metrics.json").read_text())
    except FileNotFoundError as error:
        missing = Path(str(error.filename)).name
        raise FileNotFoundError(f"{folder} is not a Sacred run folder with metrics ({missing} is missing).") from None
    monitor = config.get("monitor")
    names = {f"epoch.{key}": label for key, label in HEALTH.items()}
    masses = sorted(key for key in metrics if key.startswith("epoch.error_mass_on_objects."))
    names.update({key: "error mass " + key.rsplit(".", 1)[1] for key in masses})
    if monitor:
        names[f"epoch.{monitor}"] = monitor
    if "epoch.keypoint_recall" not in metrics:
        if not any(key.startswith("epoch.") for key in metrics):
            raise ValueError(f"{folder} has not finished an epoch yet: its health is logged at each epoch's end.")
        raise ValueError(f"{folder} logged no per-epoch keypoint health (epoch.keypoint_recall): not a keypoint run.")
    start = _time(run["start_time"])
    steps = config.get("steps_per_epoch")
    rows: dict[int, dict] = {}
    for key, label in names.items():
        series = metrics.get(key, {"steps": [], "values": [], "timestamps": []})
        for epoch, value, stamp in zip(series["steps"], series["values"], series["timestamps"], strict=True):
            row = rows.setdefault(epoch, {"run": str(folder), "epoch": epoch, "minutes": 0.0})
            row[label] = value
            minutes = (_time(stamp) - start).total_seconds() / 60
            row["minutes"] = max(row["minutes"], minutes)
    table = pd.DataFrame([rows[e] for e in sorted(rows)])
    if steps:
        table.insert(2, "steps", table["epoch"] * steps)
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="Sacred run folders (runs/<id>) of keypoint-model trainings")
    args = parser.parse_args(argv)
    table = pd.concat([health_table(folder) for folder in args.runs], ignore_index=True)
    print(markdown_table(table))


if __name__ == "__main__":
    main()
