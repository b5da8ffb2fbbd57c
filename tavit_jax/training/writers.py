"""Metrics to TensorBoard event files and the console.

CLU's metric writers import TensorFlow when the package is imported, and TensorFlow is not
a dependency here; tensorboardX writes the same event files in pure Python.
"""

import os

import tensorboardX


class MetricWriter:
  """`write_scalars(step, {name: value})` to TensorBoard event files."""

  def __init__(self, logdir: str, enabled: bool = True):
    """`enabled=False` writes nothing (processes other than the first of a distributed run)."""
    self._writer = None
    if enabled:
      os.makedirs(logdir, exist_ok=True)
      self._writer = tensorboardX.SummaryWriter(logdir)

  def write_scalars(self, step: int, scalars: dict) -> None:
    for name, value in scalars.items() if self._writer else ():
      self._writer.add_scalar(name, float(value), step)

  def flush(self) -> None:
    if self._writer:
      self._writer.flush()

  def close(self) -> None:
    if self._writer:
      self._writer.close()
