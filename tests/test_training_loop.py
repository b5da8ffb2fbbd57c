"""The launcher's loop on configs/tiny.py: outputs, exact resume, NaN handling, bad configs."""

import importlib.util
import json
import os
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from tavit_jax import models
from tavit_jax.errors import TavitError
from tavit_jax.evaluation import communication
from tavit_jax.training import config_check
from tavit_jax.training.loop import _check_workdir_config, train_and_evaluate, TrainingDiverged

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(data_dir, **train):
  spec = importlib.util.spec_from_file_location("tiny", os.path.join(ROOT, "configs", "tiny.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.data.data_dir = data_dir
  config.train.update(train)
  return config


def final_state(workdir):
  """The latest checkpoint's arrays, read back with orbax as plain numpy."""
  directory = os.path.join(workdir, "checkpoints")
  step = max(int(name) for name in os.listdir(directory) if name.isdigit())
  with ocp.StandardCheckpointer() as checkpointer:
    return step, checkpointer.restore(os.path.join(directory, str(step), "state"))


def flat(tree):
  return {jax.tree_util.keystr(p): np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(tree)}


@pytest.fixture(scope="module")
def uninterrupted(data_dir, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("run"))
  rows = train_and_evaluate(tiny_config(data_dir), workdir)
  return workdir, rows


def test_a_run_leaves_results_pictures_and_checkpoints(uninterrupted):
  workdir, rows = uninterrupted
  phases = ["cycle 1 client", "cycle 1 server", "cycle 2 client", "cycle 2 server"]
  assert sorted({r["phase_name"] for r in rows}, key=phases.index) == phases
  assert {(r["task"], r["eval_set"]) for r in rows} == {("denoising", "sigma30"), ("deraining", "light"),
                                                      ("deraining", "heavy")}
  for name in ("results.md", "results.csv", "results.json", "psnr_per_phase.png", "config.json"):
    assert os.path.exists(os.path.join(workdir, name)), name
  assert sorted(os.listdir(os.path.join(workdir, "samples"))) == [f"phase_{i:02d}.png" for i in range(4)]
  assert os.listdir(os.path.join(workdir, "tensorboard"))
  step, _ = final_state(workdir)
  assert step == 10  # 2 cycles × (3 client + 2 server steps).
  with open(os.path.join(workdir, "results.md")) as f:
    markdown = f.read()
  assert "cycle 2 server" in markdown
  config = tiny_config(None)
  sizes = communication.bytes_per_step(models.build(config.model, 32), 32, 2)
  assert (f"| server-phase step, per client | {sizes['server_phase_up']:,} B "
          f"| {sizes['server_phase_down']:,} B |") in markdown
  # 4 clients, each: 2 × 3 client steps, 2 × 2 server steps, 2 FedAvgs with its task peer.
  up = 4 * (6 * sizes["client_phase_up"] + 4 * sizes["server_phase_up"] + 2 * sizes["fedavg_upload"])
  assert f"| whole run, all clients | {up / 2**20:,.1f} MiB |" in markdown


@pytest.mark.slow  # Over 30 s on 2 cores; CI runs it.
def test_eval_every_cycle_evaluates_only_after_each_cycles_server_phase(data_dir, tmp_path):
  config = tiny_config(data_dir, cycles=1)
  config.eval.every = "cycle"
  rows = train_and_evaluate(config, str(tmp_path))
  assert {r["phase_name"] for r in rows} == {"cycle 1 server"}
  assert os.listdir(tmp_path / "samples") == ["phase_01.png"]


def test_resume_after_interrupt_equals_uninterrupted(uninterrupted, data_dir, tmp_path):
  workdir = str(tmp_path)
  config = tiny_config(data_dir)
  train_and_evaluate(config, workdir, max_steps=4)  # Stops mid client phase of cycle 2.
  assert final_state(workdir)[0] == 4
  rows = train_and_evaluate(config, workdir)
  reference_dir, reference_rows = uninterrupted
  (step, state), (reference_step, reference) = final_state(workdir), final_state(reference_dir)
  assert step == reference_step
  resumed, expected = flat(state), flat(reference)
  assert resumed.keys() == expected.keys()
  for key in expected:
    np.testing.assert_array_equal(resumed[key], expected[key], err_msg=key)
  assert [r["output/psnr"] for r in rows] == [r["output/psnr"] for r in reference_rows]


def test_rerunning_a_finished_run_changes_nothing(uninterrupted, data_dir):
  workdir, rows = uninterrupted
  before = flat(final_state(workdir)[1])
  assert train_and_evaluate(tiny_config(data_dir), workdir) == rows
  after = flat(final_state(workdir)[1])
  assert all(np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.slow  # Over 30 s on 2 cores; CI runs it.
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data_dir, tmp_path, monkeypatch):
  workdir = str(tmp_path)
  train_and_evaluate(tiny_config(data_dir), workdir, max_steps=2)
  good = flat(final_state(workdir)[1])
  # An infinite learning rate is refused up front (config_check); with that check off, the
  # loop's own guard against a diverging run is what this pins.
  monkeypatch.setattr(config_check, "validate", lambda config: config)
  with pytest.raises(TrainingDiverged, match=r"training diverged at step 3 .*last good checkpoint \(step 2\)"):
    train_and_evaluate(tiny_config(data_dir, client_lr=float("inf")), workdir)
  step, state = final_state(workdir)
  assert step == 2
  kept = flat(state)
  assert all(np.array_equal(good[k], kept[k]) for k in good)
  assert all(np.all(np.isfinite(v)) for v in kept.values() if v.dtype.kind == "f")


def test_a_workdir_of_another_model_is_refused(uninterrupted, data_dir):
  workdir, _ = uninterrupted
  config = tiny_config(data_dir)
  config.model.dim = 16
  with pytest.raises(TavitError, match="different model"):
    train_and_evaluate(config, workdir)


def test_a_workdir_from_before_the_wire_options_still_resumes(data_dir, tmp_path):
  """config.json of runs made before model.pos_emb/mask_token and train.permute_tokens/
  token_keep existed: those runs had the defaults, so they resume; another value is refused."""
  config = tiny_config(data_dir)
  _check_workdir_config(config, str(tmp_path))
  path = tmp_path / "config.json"
  stored = json.loads(path.read_text())
  for key in ("train.permute_tokens", "train.token_keep"):
    del stored[key]
  del stored["model"]["pos_emb"], stored["model"]["mask_token"]
  path.write_text(json.dumps(stored))
  _check_workdir_config(config, str(tmp_path))
  config.model.pos_emb = "client"
  with pytest.raises(TavitError, match="different model"):
    _check_workdir_config(config, str(tmp_path))


def _launch(*flags, cwd=ROOT):
  return subprocess.run([sys.executable, "-m", "tavit_jax.cli.train", *flags], cwd=cwd,
                        capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("flag, message", [
    ("--config.train.cycels=1", "error: config has no key 'cycels' (Did you mean \"cycles\""),
    ("--config.train.mode=federated", "error: train.mode must be one of ('alternating', 'end_to_end', 'single_round', 'simultaneous')"),
])
def test_launcher_config_mistakes_are_one_line(flag, message, tmp_path):
  result = _launch("--config=configs/tiny.py", f"--workdir={tmp_path}", flag)
  assert result.returncode == 2, result.stderr
  lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
  assert len(lines) == 1 and lines[0].startswith(message), result.stderr
  assert "Traceback" not in result.stderr


@pytest.mark.slow  # A launched process (over 20 s); the in-process NaN test stays fast.
def test_launcher_reports_divergence_in_one_line(data_dir, tmp_path):
  # A finite but absurd learning rate (inf is refused before the run starts, config_check):
  # the parameters overflow within the first client phase.
  result = _launch("--config=configs/tiny.py", f"--workdir={tmp_path}", f"--config.data.data_dir={data_dir}",
                   "--config.train.client_lr=1e38")
  assert result.returncode == 2, result.stderr[-2000:]
  assert ("error: training diverged at step 3 (cycle 1 client): parameters are not finite"
          in result.stderr), result.stderr[-2000:]
  assert "Lower train.client_lr / train.server_lr" in result.stderr
  assert "Traceback" not in result.stderr
