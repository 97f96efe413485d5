"""What every Sacred experiment shares: observers and the runs/ folder, a check of the config's types, and a console
without noise.

Runs are recorded by a FileStorageObserver under `runs/` (or RUNS_DIR); set MONGO_URL (and optionally MONGO_DB) to
record into MongoDB as well, the many-machine option.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from sacred import SETTINGS, Experiment
from sacred.initialize import create_run
from sacred.observers import FileStorageObserver
from sacred.run import Run

from experiments.workspace import Workspace

# Sacred's default "fd" capture tees the console through subprocesses that it kills at the end of every run, printing
# "tee_stdout.wait timeout. Forcibly terminating." twice; "sys" captures what Python prints, which is what runs log.
SETTINGS.CAPTURE_MODE = "sys"
# absl's Python logger reports every checkpoint's sharding time at INFO level.
logging.getLogger("absl").setLevel(logging.WARNING)


class _NamedConfigDocs(logging.Filter):
    """Drops Sacred's warning that a named config's docstring is a new config entry: it is the named config's
    documentation (shown by print_config), not a setting."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != 'Added new config entry: "__doc__"'


def check_config_types(updates: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Refuses an updated config value whose type differs from its default's (e.g. batch_size=abc), naming both. A
    default of None takes any value, a float one an int, and a str one a number (the command line reads keypointer=12
    as an int)."""
    for key, value in sorted(updates.items()):
        if key not in defaults or defaults[key] is None:
            continue  # unknown keys are Sacred's to refuse
        want, given = type(defaults[key]), type(value)
        if want is given or (want, given) in _ALLOWED or {want, given} <= {list, tuple}:
            continue
        raise TypeError(
            f"Config value {key}={value!r} is a {given.__name__}, but {key} takes a {want.__name__} like its default "
            f"{defaults[key]!r}; `print_config` lists every default."
        )


_ALLOWED = {(float, int), (str, int), (str, float)}


class CheckedExperiment(Experiment):
    """A Sacred experiment that checks the types of the config updates against the defaults before the config is
    evaluated, where a value of the wrong type would otherwise fail in a derived entry or deep inside the run."""

    def _create_run(  # type: ignore[override]
        self,
        command_name: str | None = None,
        config_updates: dict[str, Any] | None = None,
        named_configs: Sequence[str] = (),
        info: dict | None = None,
        meta_info: dict | None = None,
        options: dict | None = None,
    ) -> Run:
        if config_updates:
            defaults = create_run(self, command_name or self.default_command, None, named_configs=named_configs).config
            check_config_types(config_updates, defaults)
        return super()._create_run(command_name, config_updates, named_configs, info, meta_info, options)


def experiment(name: str) -> Experiment:
    """A Sacred experiment recorded under RUNS_DIR, with the calling module's docstring as its --help text."""
    ex = CheckedExperiment(name, save_git_info=False)
    ex.doc = sys._getframe(1).f_globals.get("__doc__") or ""
    ex.observers.append(FileStorageObserver(str(Workspace.here().runs)))
    if os.environ.get("MONGO_URL"):
        from sacred.observers import MongoObserver

        ex.observers.append(MongoObserver(url=os.environ["MONGO_URL"], db_name=os.environ.get("MONGO_DB", "keypoints")))
    root = logging.getLogger()
    if not any(isinstance(f, _NamedConfigDocs) for f in root.filters):
        root.addFilter(_NamedConfigDocs())
    return ex


def settings_from_config(cls: Any, config: dict[str, Any], untrained: Sequence[str], **resolved: Any) -> Any:
    """A frozen settings dataclass `cls` from a Sacred config: each field named like a config entry takes its value,
    `resolved` gives the fields computed from several entries (game, schedule, ...), and the field `trained` is the
    record of every entry not in `untrained` (work/settings.json: a resume with other values is refused)."""
    values = {f.name: config[f.name] for f in dataclasses.fields(cls) if f.name in config and f.name not in resolved}
    trained = json.loads(json.dumps({k: v for k, v in config.items() if k not in untrained}))
    return cls(**values, **resolved, trained=trained)
