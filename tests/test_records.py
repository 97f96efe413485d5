"""What a run records and reads: no password in any run file, a clear error for an unreachable MongoDB, config files
read as plain data only."""

import json
import pickle
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
    ex = common.experiment("probe")
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
