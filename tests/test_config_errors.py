"""Launcher mistakes (misspelt config keys, bad values, missing files) are one clear line."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("flag, message", [
    ("--config.data.suit=tiny", "error: config has no key 'suit' (Did you mean \"suite\" instead of \"suit\"?)"),
    ("--config.data.batch_size=many", "error: flag --config.data.batch_size=many"),
    ("--config=configs/nowhere.py", "error: [Errno 2] No such file or directory: 'configs/nowhere.py'"),
])
def test_config_mistake_is_one_line(flag, message):
  result = subprocess.run(
      [sys.executable, "experiments/input_quality.py", "--config=configs/default.py", flag],
      cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2
  lines = [l for l in result.stderr.splitlines() if l.startswith("error:")]
  assert len(lines) == 1 and lines[0].startswith(message), result.stderr
  assert "Traceback" not in result.stderr
