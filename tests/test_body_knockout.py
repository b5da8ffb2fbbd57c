"""experiments/body_knockout.py: a trained run scored with its body replaced at evaluation."""

import json
import os
import subprocess
import sys

import pytest

from tavit_jax.training.loop import train_and_evaluate
from test_training_loop import ROOT, tiny_config  # pylint: disable=g-import-not-at-top


@pytest.mark.slow  # A tiny run, then four evaluations in a subprocess: about 60 s on 2 cores.
def test_the_trained_column_is_the_runs_own_score_and_skipping_the_body_changes_it(
    data_dir, tmp_path):
  config = tiny_config(data_dir, cycles=1, client_phase_steps=(40,), server_phase_steps=2)
  config.clients = ("denoising", "denoising")
  config.data.eval_split = "validation"
  workdir = str(tmp_path / "run")
  rows = train_and_evaluate(config, workdir)
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "experiments", "body_knockout.py"),
       f"--workdir={workdir}", f"--config={os.path.join(ROOT, 'configs', 'tiny.py')}",
       f"--config.data.data_dir={data_dir}", f"--out={tmp_path / 'knockout.md'}"],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  line = next(l for l in (tmp_path / "knockout.md").read_text().splitlines()
              if l.startswith("| denoising / sigma30 |"))
  _, _, _, trained, initial, skipped, silenced, _ = line.split("|")
  assert float(trained) == pytest.approx(rows[-1]["output/psnr"], abs=0.006)
  # At this size the body's output hardly counts (silenced, the tiny run scores as trained:
  # the tail restores from the head's skips); feeding f_H on in its place does change it.
  assert float(skipped) != float(trained) and float(initial) > 0 and float(silenced) > 0, line
  assert json.load(open(os.path.join(workdir, "config.json")))["clients"] == ["denoising"] * 2
