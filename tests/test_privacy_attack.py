"""experiments/privacy_attack.py end to end on a tiny permuted, punched run (numbers not
asserted), and that run's export, which restores unpermuted."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from tavit_jax.serving import export, inference, sources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_attack_runs_end_to_end_on_a_permuted_punched_run(tmp_path, data_dir):
  workdir = tmp_path / "run"
  train = subprocess.run(
      [sys.executable, "-m", "tavit_jax.cli.train", "--config=configs/tiny.py",
       f"--workdir={workdir}", f"--config.data.data_dir={data_dir}", "--config.train.cycles=1",
       "--config.train.client_phase_steps=(1,)", "--config.train.server_phase_steps=1",
       "--config.model.pos_emb=client", "--config.train.permute_tokens=per_sample",
       "--config.model.mask_token=true", "--config.train.token_keep=0.5"],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert train.returncode == 0, train.stderr[-3000:]
  attack = subprocess.run(
      [sys.executable, "experiments/privacy_attack.py", f"--workdir={workdir}", "--steps=3",
       "--suite=tiny", f"--data_dir={data_dir}", "--max_images=1", "--batch_size=4"],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert attack.returncode == 0, attack.stderr[-3000:]
  out = workdir / "privacy_attack"
  with open(out / "attack.csv") as f:
    rows = list(csv.DictReader(f))
  assert {(r["task"], r["attacker"]) for r in rows} == {
      (task, attacker) for task in ("denoising", "deraining")
      for attacker in ("trained on what it sees", "trained on tokens in order")}
  assert "f_H permuted, 0.5 of the tokens" in (out / "attack.md").read_text()
  for task in ("denoising", "deraining"):
    assert (out / f"attack_{task}.png").stat().st_size > 10_000
  # The client's position embedding travels with the export; inference runs unpermuted.
  exported = tmp_path / "exported"
  export.export(str(workdir), str(exported), client="denoising", platforms=("cpu",))
  patches = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  trained = sources.from_workdir(str(workdir), client="denoising")
  assert "position_embedding" in trained.params["head"]
  np.testing.assert_allclose(inference.load(str(exported)).restore_patches(patches),
                             trained.restore_fn()(trained.params, patches), rtol=1e-5, atol=1e-6)
