"""Training across processes equals training in one: configs/distributed_tiny.py (8 clients)
on 2 processes x 4 CPU devices against 1 process x 8 devices, launched as a user launches
it (the same `tavit-train` command per process plus the coordinator flags)."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import fake_devices

from tavit_jax import files
from tavit_jax.serving import sources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENTS = [f"denoising_{i}" for i in range(4)] + [f"deraining_{i}" for i in range(4)]

pytestmark = pytest.mark.slow


def launch(workdir, data_dir, devices: int, processes: int) -> list[subprocess.CompletedProcess]:
  env = fake_devices.cpu_env(devices, TAVIT_DATA_DIR=data_dir)
  command = [sys.executable, "-m", "tavit_jax.cli.train", "--config=configs/distributed_tiny.py",
             f"--workdir={workdir}"]
  if processes > 1:
    with socket.socket() as s:
      s.bind(("localhost", 0))
      port = s.getsockname()[1]
    command += [f"--coordinator_address=localhost:{port}", f"--num_processes={processes}"]
  running = [subprocess.Popen(command + ([f"--process_id={p}"] if processes > 1 else []), cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for p in range(processes)]
  results = []
  for process in running:
    out, err = process.communicate(timeout=900)
    results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    assert process.returncode == 0, err[-3000:]
  return results


def test_two_processes_of_four_devices_equal_one_of_eight(data_dir, tmp_path):
  one, two = str(tmp_path / "one"), str(tmp_path / "two")
  launch(one, data_dir, devices=8, processes=1)
  first, second = launch(two, data_dir, devices=4, processes=2)
  assert "## Final results" in first.stdout and "## Final results" not in second.stdout
  for client in CLIENTS:
    expected, got = (files.flatten(sources.from_workdir(w, client).params) for w in (one, two))
    assert got.keys() == expected.keys()
    for key in expected:  # Same math; only the order of float reductions may differ.
      np.testing.assert_allclose(got[key], expected[key], rtol=1e-4, atol=1e-5, err_msg=key)
  for row_two, row_one in zip(files.read_json(f"{two}/results.json"),
                              files.read_json(f"{one}/results.json"), strict=True):
    assert row_two == pytest.approx(row_one, abs=1e-4)
  # Each process kept its own data position; the same launch again resumes from them.
  first, _ = launch(two, data_dir, devices=4, processes=2)
  assert f"Resuming {two} at step 4 of 4." in first.stdout
