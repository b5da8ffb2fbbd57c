"""What every benchmark here shares: interleaved timing and the machine's load."""

import os
import sys
import time


def interleaved(contenders: dict, repeats: int) -> dict:
  """Seconds per call of each contender, calls alternating (A, B, A, B, ...) after one
  warm-up call each, so their ratio survives a busy machine."""
  for fn in contenders.values():
    fn()
  times = {name: [] for name in contenders}
  for _ in range(repeats):
    for name, fn in contenders.items():
      start = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - start)
  return times


def load() -> str:
  """The 1/5/15-minute load averages, e.g. '1.3/1.4/1.9'."""
  return "/".join(f"{v:.1f}" for v in os.getloadavg())


def torch_reference():
  """tests/torch_reference.py: the official network's structure in PyTorch (needs torch)."""
  tests = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
  if tests not in sys.path:
    sys.path.insert(0, tests)
  import torch_reference as module  # pylint: disable=g-import-not-at-top
  return module
