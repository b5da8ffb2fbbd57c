"""`train.body_from`: a run starts from another run's body (new-task transfer); with
`train.server_phase_steps=0` the body stays exactly as loaded while heads and tails learn."""

import os

import jax
import numpy as np
import pytest

from tavit_jax import models
from tavit_jax.errors import TavitError
from tavit_jax.training import body_source
from tavit_jax.training.checkpoints import Checkpoints
from tavit_jax.training.loop import _check_workdir_config, train_and_evaluate
from test_training_loop import final_state, flat, tiny_config  # pylint: disable=g-import-not-at-top


def _newcomer(data_dir, body_from, **train):
  config = tiny_config(data_dir, cycles=1, client_phase_steps=(2,), server_phase_steps=0,
                       body_from=body_from, **train)
  config.clients = ("deraining",)  # A task the donor's body never saw.
  config.eval.every = "cycle"
  return config


@pytest.fixture(scope="module")
def stored_bodies(tmp_path_factory):
  """A workdir with checkpoints at steps 3 and 7 holding two different tiny bodies (written
  directly: no training)."""
  workdir = str(tmp_path_factory.mktemp("stored"))
  model = models.build(tiny_config(None).model, 32)
  bodies = {step: model.init_body(jax.random.PRNGKey(step)) for step in (3, 7)}
  checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"))
  for step, body in bodies.items():
    checkpoints.save(step, {"server": {"body": body}, "step": np.int32(step)}, {})
  checkpoints.close()
  return workdir, bodies, model.init_body(jax.random.PRNGKey(0))


def test_a_workdir_gives_its_latest_body_and_a_checkpoint_folder_its_own(stored_bodies):
  workdir, bodies, like = stored_bodies
  assert body_source.checkpoint_folder(workdir) == os.path.join(workdir, "checkpoints", "7")
  for source, step in ((workdir, 7), (os.path.join(workdir, "checkpoints", "3"), 3)):
    loaded = flat(body_source.load_body(source, like))
    assert loaded.keys() == flat(bodies[step]).keys()
    for key, value in flat(bodies[step]).items():
      np.testing.assert_array_equal(loaded[key], value, err_msg=key)


def test_a_missing_or_foreign_body_is_one_line(stored_bodies, data_dir, tmp_path):
  workdir, _, _ = stored_bodies
  with pytest.raises(TavitError, match=r"^train.body_from=.*nowhere: no such folder$"):
    train_and_evaluate(_newcomer(data_dir, str(tmp_path / "nowhere")), str(tmp_path / "a"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(TavitError, match="neither a training workdir with a checkpoint"):
    train_and_evaluate(_newcomer(data_dir, str(tmp_path / "empty")), str(tmp_path / "b"))
  wider = _newcomer(data_dir, workdir)
  wider.model.body_mlp_dim = 64
  with pytest.raises(TavitError) as error:
    train_and_evaluate(wider, str(tmp_path / "c"))
  assert str(error.value).startswith("train.body_from: the body in") and "\n" not in str(error.value)


@pytest.mark.slow  # Two tiny runs, about 50 s on 2 cores.
def test_a_frozen_loaded_body_stays_while_head_and_tail_learn(data_dir, tmp_path):
  donor = str(tmp_path / "donor")  # One cycle on denoising: its body learned in 2 server steps.
  config = tiny_config(data_dir, cycles=1, client_phase_steps=(1,), server_phase_steps=2)
  config.clients = ("denoising",)
  config.eval.every = "cycle"
  train_and_evaluate(config, donor)
  newcomer = str(tmp_path / "newcomer")
  train_and_evaluate(_newcomer(data_dir, donor), newcomer)
  _, given = final_state(donor)
  step, state = final_state(newcomer)
  assert step == 2
  body, loaded = flat(state["server"]["body"]), flat(given["server"]["body"])
  assert body.keys() == loaded.keys()
  for key in body:  # Bit for bit the donor's body after 2 client steps through it.
    np.testing.assert_array_equal(body[key], loaded[key], err_msg=key)
  # The body's optimizer never stepped; the head's and tail's did (Adam's first moments).
  assert all(not np.any(v) for k, v in flat(state["server"]["opt"]).items() if "mu" in k)
  moments = {k: v for k, v in flat(state["clients"]["opt"]).items() if "mu" in k}
  for part in ("'head'", "'tail'"):
    assert any(np.any(v) for k, v in moments.items() if part in k), part
  # Another source, or fewer images, on resume would be another experiment in this workdir.
  with pytest.raises(TavitError, match="different train.body_from"):
    _check_workdir_config(_newcomer(data_dir, donor + "/checkpoints/3"), newcomer)
  fewer = _newcomer(data_dir, donor)
  fewer.data.train_images = 2
  with pytest.raises(TavitError, match="different data.train_images"):
    _check_workdir_config(fewer, newcomer)
