"""experiments/privacy_attack.py end to end on tiny runs: every attacker runs and writes its
row and picture (numbers not asserted, except the probe's regression on client-side
positions), and runs trained with the defences export and restore."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from tavit_jax.attacks import suite
from tavit_jax.serving import export, inference, sources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train(workdir, data_dir, *overrides):
  run = subprocess.run(
      [sys.executable, "-m", "tavit_jax.cli.train", "--config=configs/tiny.py",
       f"--workdir={workdir}", f"--config.data.data_dir={data_dir}", "--config.train.cycles=1",
       "--config.train.client_phase_steps=(1,)", "--config.train.server_phase_steps=1",
       "--config.clients=('denoising', 'denoising')", *overrides], cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-3000:]


def attack(workdir, data_dir, *flags):
  run = subprocess.run(
      [sys.executable, "experiments/privacy_attack.py", f"--workdir={workdir}", "--steps=3",
       "--suite=tiny", f"--data_dir={data_dir}", "--max_images=1", "--batch_size=4", "--crop=96", *flags],
      cwd=ROOT, capture_output=True, text=True, timeout=900)
  assert run.returncode == 0, run.stderr[-3000:]
  out = workdir / "privacy_attack"
  with open(out / "attack.csv") as f:
    return out, list(csv.DictReader(f))


@pytest.mark.slow
def test_every_attacker_runs_and_the_probe_finds_client_side_positions(tmp_path, data_dir):
  """The regression behind the corrected claim: tokens shuffled but carrying the head's
  position embedding give their positions to a linear probe."""
  workdir = tmp_path / "run"
  train(workdir, data_dir, "--config.model.pos_emb=client",
        "--config.train.permute_tokens=per_sample")
  out, rows = attack(workdir, data_dir)
  assert {(r["task"], r["attacker"]) for r in rows} == {
      ("denoising", attacker) for attacker in ("patch mean (baseline)", *suite.ATTACKERS)}
  for row in rows:
    assert np.isfinite(float(row["reconstruction/psnr"])), row
    if row["attacker"] == "probe":
      assert float(row["position_accuracy"]) > 0.95, row
  assert "f_H permuted" in (out / "attack.md").read_text()
  assert "(strongest)" in (out / "attack.md").read_text()
  assert (out / "attack_denoising.png").stat().st_size > 10_000
  # An attacker added later (--merge) replaces its own row and keeps the others.
  _, merged = attack(workdir, data_dir, "--attackers=set mean", "--merge")
  assert [r["attacker"] for r in merged] == [r["attacker"] for r in rows]
  assert [r for r in merged if r["attacker"] != "set mean"] == [
      r for r in rows if r["attacker"] != "set mean"]
  assert (out / "attack_denoising_added.png").exists()
  # The client's position embedding travels with the export; inference runs unpermuted.
  exported = tmp_path / "exported"
  export.export(str(workdir), str(exported), client="denoising", platforms=("cpu",))
  patches = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  trained = sources.from_workdir(str(workdir), client="denoising")
  assert "position_embedding" in trained.params["head"]
  np.testing.assert_allclose(inference.load(str(exported)).restore_patches(patches),
                             trained.restore_fn()(trained.params, patches), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_run_without_positions_noised_and_punched_is_attacked_exported_and_restored(
    tmp_path, data_dir):
  """The defences together (and punched tokens): attackers that place tokens handle the
  unsent slots; the export restores a photo with `tavit-restore`, noise off, clip on."""
  workdir = tmp_path / "run"
  train(workdir, data_dir, "--config.model.pos_emb=none", "--config.train.permute_tokens=per_sample",
        "--config.model.feature_clip=1.0", "--config.model.feature_noise=4.0",
        "--config.model.mask_token=true", "--config.train.token_keep=0.5")
  out, rows = attack(workdir, data_dir, "--attackers=as sent,probe,jigsaw,head inversion")
  assert {r["attacker"] for r in rows} == {"patch mean (baseline)", "as sent", "probe", "jigsaw",
                                           "head inversion"}
  assert "noised σ=4" in (out / "attack.md").read_text()
  exported = tmp_path / "exported"
  export.export(str(workdir), str(exported), client="denoising", platforms=("cpu",))
  patches = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  trained = sources.from_workdir(str(workdir), client="denoising")
  np.testing.assert_allclose(inference.load(str(exported)).restore_patches(patches),
                             trained.restore_fn()(trained.params, patches), rtol=1e-5, atol=1e-6)
  photo = tmp_path / "photo.png"
  from PIL import Image  # pylint: disable=g-import-not-at-top
  Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 52, 3), np.uint8)).save(photo)
  restore = subprocess.run(
      [sys.executable, "-m", "tavit_jax.cli.restore", f"--model={exported}", str(photo),
       f"--out={tmp_path / 'restored'}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert restore.returncode == 0, restore.stderr[-3000:]
  assert os.listdir(tmp_path / "restored")
