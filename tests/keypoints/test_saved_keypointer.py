"""Saved keypointers: weights only (no optimizer state), old files with optimizer state still load, and a damaged
file is an error that names it and what to do."""

import h5py
import keras
import numpy as np
import pytest

from keypoints.protocol import CONFIG_FILE, WEIGHTS_FILE, DamagedKeypointerError
from permakey.keypointer import PermaKeyKeypointer, build_permakey
from tests.permakey.conftest import tiny_config as permakey_config
from tests.transporter.test_model import tiny_config as transporter_config
from training.keypointers import load_keypointer
from training.permakey_training import Optimization
from transporter.keypointer import TransporterKeypointer
from transporter.model import build_transporter


def compiled_permakey() -> PermaKeyKeypointer:
    """A PermaKey keypointer whose model is compiled as training compiles it (its three Adams built)."""
    model = build_permakey(permakey_config())
    model.compile(optimizers=Optimization(1e-3, 1e-3, 10, 0.9).optimizers())
    return PermaKeyKeypointer(model)


def compiled_transporter() -> TransporterKeypointer:
    model = build_transporter(transporter_config())
    model.compile(optimizer=keras.optimizers.Adam())
    model.optimizer.build(model.trainable_variables)
    return TransporterKeypointer(model)


FRAMES = np.random.default_rng(0).integers(0, 256, (2, 84, 84, 3), dtype=np.uint8)


def h5_names(path) -> list[str]:
    names: list[str] = []
    with h5py.File(path) as f:
        f.visit(names.append)
    return names


def assert_same_outputs(a, b) -> None:
    out_a, out_b = a(FRAMES), b(FRAMES)
    for name in ("coordinates", "heatmaps", "features"):
        np.testing.assert_array_equal(getattr(out_a, name).numpy(), getattr(out_b, name).numpy(), err_msg=name)


@pytest.mark.parametrize("make", [compiled_permakey, compiled_transporter])
def test_a_saved_keypointer_holds_no_optimizer_state_and_loads_back_the_same(tmp_path, make):
    keypointer = make()
    keypointer.save(tmp_path)
    names = h5_names(tmp_path / WEIGHTS_FILE)
    assert not [n for n in names if "optimizer" in n], names
    assert any(n.startswith("layers") for n in names)
    assert_same_outputs(keypointer, type(keypointer).load(tmp_path))


@pytest.mark.parametrize("make", [compiled_permakey, compiled_transporter])
def test_an_old_keypointer_file_with_optimizer_state_still_loads(tmp_path, make):
    keypointer = make()
    keypointer.save(tmp_path)
    keypointer.model.save_weights(str(tmp_path / WEIGHTS_FILE))  # what save wrote before: optimizers included
    assert any("optimizer" in n for n in h5_names(tmp_path / WEIGHTS_FILE))
    assert_same_outputs(keypointer, type(keypointer).load(tmp_path))


def truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("damaged", [CONFIG_FILE, WEIGHTS_FILE])
def test_a_truncated_keypointer_file_is_named_with_what_to_do(tmp_path, damaged):
    """Both through the keypointer's own load and through training.keypointers.load_keypointer (KP= / RUNS=);
    they used to end in a raw JSON or h5py error."""
    compiled_transporter().save(tmp_path)
    truncate(tmp_path / damaged)
    for load in (TransporterKeypointer.load, load_keypointer):
        with pytest.raises(DamagedKeypointerError, match=rf"{tmp_path / damaged} is damaged .*Retrain it.*KP= / RUNS="):
            load(tmp_path)


def test_a_keypointer_json_of_another_shape_is_named_as_damaged(tmp_path):
    compiled_transporter().save(tmp_path)
    (tmp_path / CONFIG_FILE).write_text("[1, 2]")
    with pytest.raises(DamagedKeypointerError, match=r'not a \{"kind": ..., "config": \{...\}\} object'):
        load_keypointer(tmp_path)
