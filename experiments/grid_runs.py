"""The runs a grid's jobs recorded in a runs folder: each run's JSON files read (or refused, naming the file), the
runs tagged with a job (Sacred comment `<grid>/<preset>/<job>`) and each job's status. run_grid asks which jobs to run,
compare which are missing."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from experiments.grids import Job
from training.checks import current_names

log = logging.getLogger(__name__)


class UnreadableRunFile(ValueError):
    """A run's JSON file (run.json, config.json, ...) that cannot be read as a JSON object; the message names the
    file and why."""


def read_run_file(path: Path) -> dict[str, Any]:
    """A run's JSON file as a dict, or UnreadableRunFile naming the file and why."""
    try:
        record = json.loads(path.read_text())
    except OSError as e:
        raise UnreadableRunFile(f"{path} cannot be read ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise UnreadableRunFile(f"{path} is not valid JSON ({e}): truncated, or being written right now") from None
    if not isinstance(record, dict):
        raise UnreadableRunFile(f"{path} holds a JSON {type(record).__name__}, not a run record")
    return record


def tagged_runs(runs_dir: str | Path) -> dict[str, list[dict[str, Any]]]:
    """{tag: [{"id", "status", "updates"}, ...] in id order} of the runs in a FileStorage folder that carry a comment
    (`updates`: the config updates the run was started with, under their current names: an older run's `noise` is
    `distractors`). An unreadable run.json is a warning naming it."""
    found: dict[str, list[dict[str, Any]]] = {}
    root = Path(runs_dir)
    if not root.is_dir():
        return found
    for folder in root.iterdir():
        if not folder.name.isdigit():
            continue
        if not (folder / "run.json").exists():
            continue  # a run being created
        try:
            run = read_run_file(folder / "run.json")
        except UnreadableRunFile as e:
            log.warning("%s; its run counts for no job (a job it completed runs again)", e)
            continue
        meta = run.get("meta") or {}
        if meta.get("comment"):
            updates = meta.get("config_updates")
            updates = current_names(updates) if isinstance(updates, dict) else updates
            entry = {"id": int(folder.name), "status": run.get("status"), "updates": updates}
            found.setdefault(meta["comment"], []).append(entry)
    for runs in found.values():
        runs.sort(key=lambda r: r["id"])
    return found


def job_runs(job: Job, runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The job's runs in id order: those tagged with its tag, and those recorded before tags named the preset (its
    legacy tag) that ran with exactly its config updates (which name the preset's work folders)."""
    mine = list(runs.get(job.tag, []))
    if job.legacy_tag != job.tag:
        updates = json.loads(json.dumps(job.settings))
        mine += [r for r in runs.get(job.legacy_tag, []) if r.get("updates") == updates]
    return sorted(mine, key=lambda r: r["id"])


def job_status(job: Job, runs: dict[str, list[dict[str, Any]]]) -> tuple[str, int | None]:
    """("completed" | "failed" | "unfinished" | "missing", latest run id): COMPLETED in any of its runs counts;
    unfinished: still running, interrupted, or killed without a word (Sacred cannot tell the last two from running)."""
    mine = job_runs(job, runs)
    if any(r["status"] == "COMPLETED" for r in mine):
        return "completed", max(r["id"] for r in mine if r["status"] == "COMPLETED")
    if not mine:
        return "missing", None
    last = mine[-1]
    return ("failed" if last["status"] == "FAILED" else "unfinished"), last["id"]
