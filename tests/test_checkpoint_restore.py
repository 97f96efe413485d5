"""Every model and optimizer the project checkpoints comes back whole from a save/restore round trip through
training.checkpointing.load_state, and a restore that would leave a variable behind fails loudly."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from rl.learner import Learner
from rl.networks import RecurrentQNetwork
from rl.options import OptionLearner, OptionQNetwork
from tests.permakey.conftest import tiny_config as tiny_permakey
from tests.transporter.test_model import tiny_config as tiny_transporter
from training.checkpointing import load_state, write_json_atomic
from training.permakey_training import Optimization, PermaKeyTraining
from training.transporter_training import TransporterTraining

# Two training steps per model: eager is cheaper than tracing them (tests/conftest.py eager_functions), and the
# variables a step creates (weights, optimizer slots and counters) are the same either way.
pytestmark = pytest.mark.usefixtures("eager_functions")


def _permakey(norm: str = "batch", **options):
    training = PermaKeyTraining(
        config=tiny_permakey(norm=norm, **options),
        optimization=Optimization(1e-3, 1e-3, 10_000, 0.85),
        work=None,  # type: ignore[arg-type]
        refit_steps=0,
        refit_restarts=1,
        refit_normalisations=("activation",),
        picture_frames=1,
        log_every=1,
        progress=False,
    )
    model, checkpoint, _ = training.build()
    frames = tf.random.stateless_uniform((4, 84, 84, 3), (1, 2))
    return model, checkpoint, lambda: model.fit(tf.data.Dataset.from_tensors(frames).repeat(2), verbose=0)


def _transporter(model_name: str):
    training = TransporterTraining(
        config=tiny_transporter(model=model_name),
        learning_rate=1e-3,
        decay_steps=10_000,
        decay_rate=0.85,
        min_offset=1,
        max_offset=2,
        picture_frames=1,
        picture_offset=1,
    )
    model, checkpoint, _ = training.build()
    source = tf.random.stateless_uniform((4, 84, 84, 3), (3, 4))
    pair = (source, tf.roll(source, 3, axis=2))
    return model, checkpoint, lambda: model.fit(tf.data.Dataset.from_tensors(pair).repeat(2), verbose=0)


def _batch(b=2, w=3, k=3):
    rng = np.random.default_rng(0)
    views = {
        "coordinates": tf.constant(rng.uniform(-0.9, 0.9, (b, w + 1, k, 2)), tf.float32),
        "features": tf.constant(rng.normal(size=(b, w + 1, k, 1)), tf.float32),
    }
    actions = tf.constant(rng.integers(0, 3, (b, w)), tf.int32)
    return views, actions, tf.ones((b, w)), tf.zeros((b, w), tf.bool), tf.zeros((b, w), tf.bool)


def _agent():
    online, target = (RecurrentQNetwork(3, "keyqn", 16, {"bins": 8}) for _ in range(2))
    learner = Learner(online, target, learning_rate=1e-3, clip_norm=10.0, gamma=0.99, n=2, tau=0.005)
    learner.start(_batch()[0])
    checkpoint = tf.train.Checkpoint(online=online, target=target, optimizer=learner.optimizer)
    return learner, checkpoint, lambda: [learner.train_step(*_batch()) for _ in range(2)]


def _explorer():
    online, target = (OptionQNetwork(3, 3, "keyqn", 16, {"bins": 8}) for _ in range(2))
    learner = OptionLearner(online, target, learning_rate=1e-3, clip_norm=10.0, gamma=0.9, lam=0.8, tau=0.05)
    learner.start(_batch()[0])
    checkpoint = tf.train.Checkpoint(online=online, target=target, optimizer=learner.optimizer)
    return learner, checkpoint, lambda: [learner.train_step(*_batch()) for _ in range(2)]


BUILDERS = {
    "permakey": _permakey,
    "permakey_layer_norm": lambda: _permakey("layer"),
    "permakey_authors": lambda: _permakey(decoder="authors", vae_loss="authors", lspn_norm="batch"),
    "transporter": lambda: _transporter("transporter"),
    "imm": lambda: _transporter("imm"),
    "agent": _agent,
    "explorer": _explorer,
}


def _variables(checkpoint: tf.train.Checkpoint) -> dict[str, tf.Variable]:
    """Every variable of the checkpoint's models (weights) and optimizers (slots and counters), by attribute and
    position."""
    noise = getattr(checkpoint, "noise", None)
    found = {"noise": noise} if noise is not None else {}
    for attribute in ("model", "vae", "lspn", "pointnet", "optimizer", "online", "target"):
        owner = getattr(checkpoint, attribute, None)
        variables = owner.weights if isinstance(owner, keras.Model) else getattr(owner, "variables", [])
        if isinstance(owner, keras.Model) and getattr(owner, "optimizer", None) is not None:
            variables = [*variables, *owner.optimizer.variables]  # compile's own optimizer is saved with the model
        found.update({f"{attribute}/{i}": variable for i, variable in enumerate(variables)})
    return found


def _values(checkpoint: tf.train.Checkpoint) -> dict[str, np.ndarray]:
    return {key: variable.numpy() for key, variable in _variables(checkpoint).items()}


def _saved_count(folder) -> int:
    """How many values the checkpoint file holds, bookkeeping left out."""
    names = [name for name, _ in tf.train.list_variables(tf.train.latest_checkpoint(str(folder)))]
    return sum(not name.startswith(("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter")) for name in names)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_a_checkpoint_restores_every_variable_of_model_and_optimizer(tmp_path, name):
    keras.utils.set_random_seed(0)
    _, saved, train = BUILDERS[name]()
    train()  # the optimizers' slots and the weights move away from their initial values
    write_json_atomic(tmp_path / "state.json", {"epoch": 1})
    tf.train.CheckpointManager(saved, str(tmp_path / "last"), max_to_keep=1).save(checkpoint_number=1)
    before = _values(saved)
    distinct = {id(variable) for variable in _variables(saved).values()}  # an optimizer lists its model's too
    assert len(distinct) == _saved_count(tmp_path / "last")  # every saved value is compared below

    keras.utils.set_random_seed(1)  # another initialisation: every variable the restore misses differs
    _, restored, _ = BUILDERS[name]()
    fresh = _values(restored)
    assert before.keys() == fresh.keys()
    assert sum(not np.array_equal(before[k], fresh[k]) for k in before) > len(before) // 2

    assert load_state(tmp_path, restored, {}) == {"epoch": 1}
    after = _values(restored)
    differ = [k for k in before if not np.array_equal(before[k], after[k])]
    assert not differ, differ


def test_a_restore_that_would_leave_variables_behind_fails_loudly(tmp_path):
    _, saved, train = _permakey()
    train()
    write_json_atomic(tmp_path / "state.json", {"epoch": 1})
    tf.train.CheckpointManager(saved, str(tmp_path / "last"), max_to_keep=1).save(checkpoint_number=1)
    model, _, _ = _permakey()
    unbuilt = Optimization(1e-3, 1e-3, 10_000, 0.85).optimizers()  # their slots are not created yet
    with pytest.raises(RuntimeError, match="does not restore whole.*delete the work folder"):
        load_state(tmp_path, tf.train.Checkpoint(model=model, **unbuilt), {})
