"""MS-DINO's single round (docs/design.md §4.4) end to end on the tiny data: one upload,
server-only DINO, one download; nothing of the clients reaches the server after the upload."""

import importlib.util
import os

import numpy as np
import pytest

from tavit_jax import models
from tavit_jax.errors import TavitError
from tavit_jax.evaluation import communication
from tavit_jax.training.protocols import single_round
from tavit_jax.training.loop import train_and_evaluate
from test_training_loop import final_state, flat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def single_round_config(data_dir):
  path = os.path.join(ROOT, "configs", "single_round.py")
  spec = importlib.util.spec_from_file_location("single_round_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("tiny")
  config.data.data_dir = data_dir
  return config


@pytest.fixture(scope="module")
def server_after_each_phase(data_dir, tmp_path_factory):
  """The run in one chunk per phase (each a resume); the server's state after each."""
  config = single_round_config(data_dir)
  workdir = str(tmp_path_factory.mktemp("single_round"))
  lengths = config.train.single_round
  servers, rows = {}, None
  for phase, steps in [("local", lengths.local_steps), ("upload", lengths.upload_batches),
                       ("dino", lengths.dino_steps), ("finetune", lengths.finetune_steps)]:
    rows = train_and_evaluate(config, workdir, max_steps=steps)
    servers[phase] = final_state(workdir)[1]["server"]
  return config, servers, rows


@pytest.mark.slow  # The run of the fixture: over 30 s on 2 cores.
def test_after_the_upload_the_server_receives_nothing(server_after_each_phase):
  _, servers, _ = server_after_each_phase
  assert not np.any(servers["local"]["uploaded"])  # Nothing before the upload...
  uploaded = servers["upload"]["uploaded"]
  assert np.all(np.any(uploaded != 0, axis=(1, 2, 3)))  # ...every client's tokens after it...
  for later in ("dino", "finetune"):  # ...and exactly those ever after.
    np.testing.assert_array_equal(servers[later]["uploaded"], uploaded)
  # The body is the DINO phase's work only: fine-tuning happens on the clients' copies.
  body = lambda phase: flat(servers[phase]["body"])
  assert any(not np.array_equal(v, body("dino")[k]) for k, v in body("upload").items())
  for key, value in body("dino").items():
    np.testing.assert_array_equal(body("finetune")[key], value)


@pytest.mark.slow  # The run of the fixture: over 30 s on 2 cores.
def test_one_upload_and_one_download_per_client_are_counted(server_after_each_phase):
  config, servers, _ = server_after_each_phase
  model = models.build(config.model, config.data.patch_size)
  counted = communication.single_round_bytes(model, config, "float32")
  assert (counted["uploads"], counted["downloads"]) == (1, 1)
  held = servers["finetune"]["uploaded"]
  assert counted["upload_bytes"] * len(config.clients) == held.nbytes  # What the server holds.
  body_bytes = sum(v.nbytes for v in flat(servers["finetune"]["body"]).values())
  assert counted["download_bytes"] == body_bytes


@pytest.mark.slow  # The run of the fixture: over 30 s on 2 cores.
def test_the_run_reports_every_task_after_finetuning(server_after_each_phase):
  config, _, rows = server_after_each_phase
  assert {r["phase_name"] for r in rows} == {"cycle 1 local", "cycle 1 finetune"}
  finetuned = [r for r in rows if r["phase_name"] == "cycle 1 finetune"]
  assert {r["task"] for r in finetuned} == set(config.clients)
  assert all(np.isfinite(r["output/psnr"]) for r in finetuned)


def test_single_round_needs_client_side_positions(data_dir):
  config = single_round_config(data_dir)
  config.model.pos_emb = "server"
  with pytest.raises(TavitError, match="pos_emb=none or client"):
    single_round.SingleRound().check(config)


@pytest.mark.slow  # A local phase and the upload: about 30 s on 2 cores.
def test_the_upload_takes_the_defences(data_dir, tmp_path):
  """With `model.pos_emb=none` and the f_H noise defence the single round runs, and what the
  server keeps is noised: token RMS above the clip, which the clean head never exceeds."""
  config = single_round_config(data_dir)
  with config.unlocked():
    config.model.update(pos_emb="none", feature_clip=0.5, feature_noise=2.0)
  lengths = config.train.single_round
  train_and_evaluate(config, str(tmp_path), max_steps=lengths.local_steps + lengths.upload_batches)
  uploaded = final_state(str(tmp_path))[1]["server"]["uploaded"]
  rms = np.sqrt(np.mean(np.square(uploaded), axis=-1))
  assert np.median(rms) > 0.9  # Noise of RMS 1.0 on tokens of RMS at most 0.5.
