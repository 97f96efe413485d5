"""What every Sacred experiment shares: observers and the runs/ folder, a check of the config's types, and a console
without noise.

Runs are recorded by a FileStorageObserver under `runs/` (or RUNS_DIR); set MONGO_URL (and optionally MONGO_DB) to
record into MongoDB as well, the many-machine option, and SQL_URL to record into a SQL database (PostgreSQL, SQLite)
through Sacred's SqlObserver. A URL, which may hold a password, is read from the environment only: Sacred records
every config value and the command line in the run's files, so a config value holding a URL with a password is
refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import numbers
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sacred import SETTINGS, Experiment
from sacred.config import config_files
from sacred.initialize import create_run
from sacred.observers import FileStorageObserver
from sacred.observers.file_storage import DEFAULT_FILE_STORAGE_PRIORITY
from sacred.run import Run

from training.workspace import Workspace

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


_URL_PASSWORD = re.compile(r"(?<=://)([^/@:]*):[^/@]*@")
"""The password of a URL's user part (`scheme://user:password@host`); MongoDB requires `:/?#[]@` in it escaped."""


def masked_url(url: str) -> str:
    """`url` with the password of its user part shown as ***, for messages and records."""
    return _URL_PASSWORD.sub(r"\1:***@", url)


def refuse_secrets(updates: dict[str, Any], prefix: str = "") -> None:
    """Refuses a config value (nested ones included) holding a URL with a password, before the run records it."""
    for key, value in sorted(updates.items()):
        if isinstance(value, dict):
            refuse_secrets(value, f"{prefix}{key}.")
        elif isinstance(value, str) and _URL_PASSWORD.search(value):
            raise ValueError(
                f"Config value {prefix}{key}={masked_url(value)!r} holds a password, which Sacred would record in the "
                "run's files (config and command line); give credentials through the environment instead (MONGO_URL "
                "for MongoDB, SQL_URL for a SQL database)."
            )


CONFIG_FILE_TYPES = (".json", ".yaml", ".yml")
"""The config files `with <file>` reads, as plain data."""


def _plain_data_config_files() -> None:
    """Makes Sacred read config files as plain data only. Its own readers run code from the file: .pickle unpickles,
    .json goes through jsonpickle (a "py/reduce" entry calls any function) and YAML's FullLoader builds Python
    objects; other file types are refused (refuse_config_files)."""
    handlers = {".json": config_files.Handler(json.load, functools.partial(json.dump, indent=2), "")}
    with contextlib.suppress(ImportError):
        import yaml  # type: ignore[import-untyped]

        handlers |= {ext: config_files.Handler(yaml.safe_load, yaml.safe_dump, "") for ext in (".yaml", ".yml")}
    config_files.HANDLER_BY_EXT.clear()
    config_files.HANDLER_BY_EXT.update(handlers)


_plain_data_config_files()


def refuse_config_files(named_configs: Sequence[str]) -> None:
    """Refuses a `with` argument that names a file (Sacred reads any existing path as a config file) of a type other
    than JSON or YAML, before anything reads it."""
    for name in named_configs:
        suffix = Path(name).suffix
        if os.path.exists(name) and suffix not in CONFIG_FILE_TYPES:
            raise ValueError(
                f"Config file {name} is not JSON or YAML ({suffix or 'no file type'}); config files must end in "
                f"{', '.join(CONFIG_FILE_TYPES)} and hold plain data (other types, pickles among them, can run code)."
            )


class CheckedExperiment(Experiment):
    """A Sacred experiment that checks the config updates before the config is evaluated: their types against the
    defaults, where a value of the wrong type would otherwise fail in a derived entry or deep inside the run, and that
    none holds a password (refuse_secrets); and that config files are JSON or YAML (refuse_config_files)."""

    def run(  # type: ignore[override]
        self,
        command_name: str | None = None,
        config_updates: dict[str, Any] | None = None,
        named_configs: Sequence[str] = (),
        info: dict | None = None,
        meta_info: dict | None = None,
        options: dict | None = None,
    ) -> Run:
        """Sacred's `run` (which the command line goes through too), after `check_updates`."""
        self.check_updates(config_updates, named_configs, command_name)
        return super().run(command_name, config_updates, named_configs, info, meta_info, options)

    def check_updates(
        self,
        config_updates: dict[str, Any] | None = None,
        named_configs: Sequence[str] = (),
        command_name: str | None = None,
    ) -> None:
        """Refuses config files other than JSON or YAML, passwords in values, and values whose type differs from the
        default's, before anything runs or is recorded."""
        refuse_config_files(named_configs)
        if config_updates:
            refuse_secrets(config_updates)
            check_config_types(config_updates, self.resolved_config(named_configs, command_name=command_name))

    def resolved_config(
        self,
        named_configs: Sequence[str] = (),
        config_updates: dict[str, Any] | None = None,
        command_name: str | None = None,
    ) -> dict[str, Any]:
        """The config a run with these named configs and updates would get, without running or recording anything."""
        command = command_name or self.default_command
        return create_run(self, command, config_updates, named_configs=named_configs).config


def experiment(name: str, doc: str | None) -> CheckedExperiment:
    """A Sacred experiment recorded under RUNS_DIR, with `doc` (its module's docstring) as its --help text."""
    ex = CheckedExperiment(name, save_git_info=False)
    ex.doc = doc or ""
    ex.observers.extend(observers_from_environment())
    root = logging.getLogger()
    if not any(isinstance(f, _NamedConfigDocs) for f in root.filters):
        root.addFilter(_NamedConfigDocs())
    return ex


def observers_from_environment() -> list[Any]:
    """The observers every run records into: the runs folder (RUNS_DIR or runs/), and MongoDB when MONGO_URL is set
    and a SQL database when SQL_URL is set."""
    observers: list[Any] = [FileStorageObserver(str(Workspace.here().runs))]
    if os.environ.get("MONGO_URL"):
        observers.append(mongo_observer(*mongo_from_environment()))
    if os.environ.get("SQL_URL"):
        observers.append(sql_observer(os.environ["SQL_URL"]))
    return observers


def settings_from_config(cls: Any, config: dict[str, Any], changeable: Sequence[str], **resolved: Any) -> Any:
    """A frozen settings dataclass `cls` from a Sacred config: each field named like a config entry takes its value,
    `resolved` gives the fields computed from several entries (game, schedule, ...), and the field `trained` is the
    record of every entry not in `changeable` (the entries a resumed run may change, CHANGEABLE_ON_RESUME and the
    experiment's own; work/settings.json: a resume with other values is refused)."""
    values = {f.name: config[f.name] for f in dataclasses.fields(cls) if f.name in config and f.name not in resolved}
    trained = json.loads(json.dumps({k: v for k, v in config.items() if k not in changeable}))
    return cls(**values, **resolved, trained=trained)


MONGO_TIMEOUT_MS = 5000
"""How long a MongoDB client waits for the server before it is reported unreachable."""


def mongo_from_environment() -> tuple[str, str]:
    """(MONGO_URL, MONGO_DB or "keypoints"): where runs are recorded into and read from MongoDB; an error when unset."""
    url = os.environ.get("MONGO_URL", "")
    if not url:
        raise ValueError("MONGO_URL is not set: set it to the MongoDB URL (e.g. mongodb://user:password@host:27017).")
    return url, os.environ.get("MONGO_DB", "keypoints")


def _pymongo() -> Any:
    try:
        import pymongo
    except ImportError as error:
        raise ImportError("MONGO_URL needs pymongo (requirements.txt): run `make install`.") from error
    return pymongo


def mongo_client(url: str) -> Any:
    """A pymongo client of `url` that waits MONGO_TIMEOUT_MS for the server."""
    return _pymongo().MongoClient(url, serverSelectionTimeoutMS=MONGO_TIMEOUT_MS)


def check_mongo(client: Any, url: str) -> None:
    """Raises ConnectionError, naming the URL with its password masked and what to do, unless the server answers."""
    pymongo = _pymongo()
    try:
        client.admin.command("ping")
    except pymongo.errors.PyMongoError as error:
        cause = _without_password(f"{type(error).__name__}: {error}".split(", Topology Description")[0], url)
        raise ConnectionError(
            f"MongoDB at {masked_url(url)} (MONGO_URL) is unreachable or refuses this client ({cause}); start the "
            "server, correct MONGO_URL, or unset it to use the runs folder only."
        ) from None


def _without_password(text: str, url: str) -> str:
    """`text` (a driver's error message) with the password part of `url`, wherever it appears, shown as ***."""
    password = _URL_PASSWORD.search(url)
    return text.replace(password.group(0), "***@") if password else text


def mongo_observer(url: str, db: str) -> Any:
    """A Sacred MongoObserver into database `db` at `url` that checks the server answers when a run starts (not when
    the experiment is built, so that print_config and --help work without it)."""
    from sacred.observers import MongoObserver

    class CheckedMongoObserver(MongoObserver):
        def started_event(self, *args: Any, **kwargs: Any) -> Any:
            check_mongo(self._client, url)
            return super().started_event(*args, **kwargs)

    return CheckedMongoObserver(client=mongo_client(url), db_name=db)


SQL_TIMEOUT_S = 5
"""How long a PostgreSQL client waits for the server before it is reported unreachable."""

SQL_PRIORITY = DEFAULT_FILE_STORAGE_PRIORITY - 10
"""Below the runs folder's: the runs folder numbers the runs, and the database records each under that number."""


def _sqlalchemy() -> Any:
    try:
        import sqlalchemy
    except ImportError as error:
        raise ImportError("SQL_URL needs sqlalchemy (requirements.txt): run `make install`.") from error
    return sqlalchemy


def sql_engine(url: str) -> Any:
    """A SQLAlchemy engine of `url` (a PostgreSQL one waits SQL_TIMEOUT_S for the server); an error naming the URL
    with its password masked when it is no database URL or its driver is missing."""
    sa = _sqlalchemy()
    try:
        parsed = sa.engine.make_url(url)
        timeout = {"connect_timeout": SQL_TIMEOUT_S} if parsed.get_backend_name() == "postgresql" else {}
        return sa.create_engine(parsed, connect_args=timeout)
    except (sa.exc.ArgumentError, ImportError) as error:
        cause = _without_password(f"{type(error).__name__}: {error}", url)
        raise ValueError(
            f"SQL_URL={masked_url(url)} is not a usable database URL ({cause}); give a SQLAlchemy URL such as "
            "postgresql://user:password@host:5432/db (its driver, psycopg2-binary, is in requirements.txt)."
        ) from None


def check_sql(engine: Any, url: str) -> None:
    """Raises ConnectionError, naming the URL with its password masked and what to do, unless the database answers."""
    sa = _sqlalchemy()
    try:
        with engine.connect():
            pass
    except sa.exc.DBAPIError as error:
        cause = _without_password(" ".join(f"{type(error.orig).__name__}: {error.orig}".split()), url)
        raise ConnectionError(
            f"The database at {masked_url(url)} (SQL_URL) is unreachable or refuses this client ({cause}); start the "
            "server, correct SQL_URL, or unset it to use the runs folder only."
        ) from None


def _numeric(result: Any) -> float | None:
    """`result` as a float when it is a number, else None: Sacred's SQL table holds a numeric result only."""
    return float(result) if isinstance(result, numbers.Real) else None


def _with_source_digests(ex_info: dict[str, Any]) -> dict[str, Any]:
    """`ex_info` with each source file's MD5 digest, which Sacred's SqlObserver checks: the runs folder's observer,
    which records first, replaces the digests in the shared `ex_info` with the paths of its copies."""
    from sacred.dependencies import get_digest

    base = ex_info["base_dir"]
    return {**ex_info, "sources": [[name, get_digest(os.path.join(base, name))] for name, _ in ex_info["sources"]]}


def sql_observer(url: str) -> Any:
    """A Sacred SqlObserver into the database at `url` that checks the database answers when a run starts (not when
    the experiment is built, so that print_config and --help work without it). Its run_id is the runs folder's
    number (SQL_PRIORITY); a result that is not a number (a dict of numbers, say) is NULL in its table and stays in
    runs/<id>/run.json."""
    from sacred.observers import SqlObserver
    from sqlalchemy.orm import scoped_session, sessionmaker

    class CheckedSqlObserver(SqlObserver):
        def started_event(self, ex_info: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            check_sql(self.engine, url)
            return super().started_event(_with_source_digests(ex_info), *args, **kwargs)

        def failed_event(self, fail_time: Any, fail_trace: Any) -> None:
            if self.run is not None:  # None when the run failed before this observer recorded its start
                super().failed_event(fail_time, fail_trace)

        def heartbeat_event(self, info: Any, captured_out: Any, beat_time: Any, result: Any) -> None:
            super().heartbeat_event(info, captured_out, beat_time, _numeric(result))

        def completed_event(self, stop_time: Any, result: Any) -> None:
            super().completed_event(stop_time, _numeric(result))

    engine = sql_engine(url)
    return CheckedSqlObserver.create_from(engine, scoped_session(sessionmaker(bind=engine)), priority=SQL_PRIORITY)
