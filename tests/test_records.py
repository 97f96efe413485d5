"""What a run records and reads: no password in any run file, a clear error for an unreachable MongoDB, runs recorded
into a real PostgreSQL server through SQL_URL, config files read as plain data only."""

import glob
import json
import os
import pickle
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sacred.observers import FileStorageObserver

from experiments import common

SECRET = "s3cret-pw"
URL = f"mongodb://user:{SECRET}@127.0.0.1:1/"  # nothing listens on port 1: connections are refused at once


def _texts(folder: Path) -> dict[str, str]:
    return {str(p): p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()}


def test_a_url_with_a_password_is_refused_as_a_config_value_before_anything_is_recorded(tmp_path):
    from experiments import compare

    runs = tmp_path / "compare_runs"
    compare.ex.observers[:] = [FileStorageObserver(str(runs))]
    with pytest.raises(ValueError, match=r"mongo_url='mongodb://user:\*\*\*@127.0.0.1:1/' holds a password.*MONGO_URL"):
        compare.ex.run(config_updates={"mongo_url": URL, "runs_dir": str(tmp_path)})
    assert not any(SECRET in text for text in _texts(tmp_path).values())


def test_compare_reads_mongodb_from_the_environment_and_records_no_password(tmp_path, monkeypatch):
    from experiments import compare

    monkeypatch.setenv("MONGO_URL", URL)
    monkeypatch.setattr(common, "MONGO_TIMEOUT_MS", 300)
    runs = tmp_path / "compare_runs"
    compare.ex.observers[:] = [FileStorageObserver(str(runs))]
    with pytest.raises(
        ConnectionError, match=r"MongoDB at mongodb://user:\*\*\*@127.0.0.1:1/ \(MONGO_URL\) is unreach"
    ):
        compare.ex.run(config_updates={"mongo": True, "out": str(tmp_path / "report")})
    texts = _texts(runs)
    assert any(p.endswith("config.json") for p in texts) and any(p.endswith("run.json") for p in texts)
    assert [p for p, text in texts.items() if SECRET in text] == []


def test_an_unreachable_mongodb_fails_the_run_at_its_start_naming_the_masked_url(tmp_path, monkeypatch):
    monkeypatch.setenv("MONGO_URL", URL)
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(common, "MONGO_TIMEOUT_MS", 300)
    ex = common.experiment("probe", "A probe experiment.")
    ran = []
    ex.main(lambda: ran.append(1))
    with pytest.raises(ConnectionError, match=r"mongodb://user:\*\*\*@127.0.0.1:1/ \(MONGO_URL\).*unset it"):
        ex.run()
    assert not ran
    assert not any(SECRET in text for text in _texts(tmp_path).values())


def test_masked_url_hides_only_the_password():
    assert common.masked_url("mongodb://u:p%40ss@h1:27017,h2/db?x=1") == "mongodb://u:***@h1:27017,h2/db?x=1"
    assert common.masked_url("mongodb://u@h/") == "mongodb://u@h/"
    assert common.masked_url("mongodb://h:27017/") == "mongodb://h:27017/"


def _postgres_bin() -> Path:
    """The folder of PostgreSQL's server programs (initdb, pg_ctl): Debian keeps them out of PATH."""
    found = shutil.which("pg_ctl") or max(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), default=None)
    if found is None:
        pytest.fail(
            "PostgreSQL's server programs (initdb, pg_ctl) are missing: .ci/run installs them "
            "(apt-get install postgresql); install them the same way to run this test."
        )
    return Path(found).resolve().parent


def _server_program(folder: Path, *command: str) -> None:
    """Runs PostgreSQL's server program `command` on `folder`, as the `postgres` user when we are root (the server
    refuses to run as root), an error showing its output when it fails."""
    argv = [str(_postgres_bin() / command[0]), *command[1:]]
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        argv = ["runuser", "-u", "postgres", "--", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=folder)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL, password included, of a PostgreSQL server started in a private temporary folder that listens on a
    Unix socket there only (no TCP); stopped and removed at the end."""
    folder = Path(tempfile.mkdtemp(prefix="pg-"))  # not pytest's tmp_path: the server's user must reach it
    data = folder / "data"
    (folder / "pw").write_text(SECRET)
    try:
        _server_program(
            folder, "initdb", "-D", str(data), "-U", "keypoints", "--pwfile", str(folder / "pw"), "-A", "scram-sha-256"
        )
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(f"listen_addresses = ''\nunix_socket_directories = '{folder}'\nfsync = off\n")
        _server_program(folder, "pg_ctl", "start", "-w", "-D", str(data), "-l", str(folder / "log"))
        yield f"postgresql://keypoints:{SECRET}@/postgres?host={folder}"
    finally:
        if (data / "postmaster.pid").exists():
            _server_program(folder, "pg_ctl", "stop", "-w", "-m", "fast", "-D", str(data))
        shutil.rmtree(folder)


def _rows(url: str) -> dict[str, list[dict]]:
    """Every row of every table in the database at `url`, by table."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        with engine.connect() as db:
            return {t: [dict(r._mapping) for r in db.execute(meta.tables[t].select())] for t in meta.tables}
    finally:
        engine.dispose()


def test_sql_url_records_a_run_into_a_real_postgresql_with_its_config_and_no_password(
    tmp_path, monkeypatch, postgres_url
):
    from experiments import generate_data

    monkeypatch.delenv("MONGO_URL", raising=False)
    monkeypatch.setenv("SQL_URL", postgres_url)
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    ex = generate_data.ex
    ex.observers[:] = common.observers_from_environment()
    out = str(tmp_path / "pong")
    try:
        run = ex.run(config_updates={"frames": 60, "shard_frames": 40, "out": out, "workers": 1, "progress": False})
    finally:
        for observer in ex.observers[1:]:
            observer.engine.dispose()
        ex.observers[:] = []
    tables = _rows(postgres_url)
    [row] = tables["run"]
    assert (row["run_id"], row["status"], row["command"]) == (str(run._id), "COMPLETED", "main")
    assert (tmp_path / "runs" / str(run._id) / "run.json").exists()  # one number in both records
    config = json.loads(row["config"])
    assert (config["frames"], config["out"], config["game"]) == (60, out, "pong")
    assert {"manifest.json", "ground_truth.png"} <= {a["filename"] for a in tables["artifact"]}
    assert [t for t, rows in tables.items() if SECRET in repr(rows)] == []


def test_an_unreachable_sql_database_fails_the_run_at_its_start_naming_the_masked_url(tmp_path, monkeypatch):
    url = f"postgresql://user:{SECRET}@127.0.0.1:1/db"  # nothing listens on port 1
    monkeypatch.setenv("SQL_URL", url)
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    ex = common.experiment("probe", "A probe experiment.")
    ran = []
    ex.main(lambda: ran.append(1))
    with pytest.raises(ConnectionError, match=r"postgresql://user:\*\*\*@127.0.0.1:1/db \(SQL_URL\).*unset it"):
        ex.run()
    assert not ran
    assert not any(SECRET in text for text in _texts(tmp_path).values())


class _Touch:
    """Unpickled, it creates the file `path`: the stand-in for code a pickle runs."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_a_pickle_config_file_is_refused_naming_the_allowed_types_and_never_unpickled(tmp_path):
    from experiments import generate_data

    marker, evil = tmp_path / "ran", tmp_path / "evil.pickle"
    evil.write_bytes(pickle.dumps({"frames": _Touch(marker)}))
    generate_data.ex.observers[:] = []
    with pytest.raises(ValueError, match=r"evil.pickle is not JSON or YAML \(.pickle\).*\.json, \.yaml, \.yml"):
        generate_data.ex.run("print_config", named_configs=[str(evil)])
    assert not marker.exists()


def test_json_and_yaml_config_files_are_read_as_plain_data(tmp_path):
    """Sacred's own JSON reader is jsonpickle, whose "py/reduce" entries call a function."""
    from experiments import generate_data

    marker = tmp_path / "ran"
    call = {"py/reduce": [{"py/function": "pathlib.Path.touch"}, {"py/tuple": [str(marker)]}]}
    (tmp_path / "evil.json").write_text(json.dumps({"frames": 10, "progress": call}))
    generate_data.ex.observers[:] = []
    with pytest.raises(KeyError, match="reserved jsonpickle tags"):  # read as data: a key Sacred refuses
        generate_data.ex.run("print_config", named_configs=[str(tmp_path / "evil.json")])
    assert not marker.exists()
    (tmp_path / "settings.json").write_text(json.dumps({"frames": 10}))
    (tmp_path / "settings.yml").write_text("frames: 12\n")
    for name, frames in (("settings.json", 10), ("settings.yml", 12)):
        run = generate_data.ex.run("print_config", named_configs=[str(tmp_path / name)])
        assert run.config["frames"] == frames
