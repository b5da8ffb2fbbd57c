"""Metrics to TensorBoard event files and the console.

CLU's metric writers import TensorFlow when the package is imported, and TensorFlow is not
a dependency here; tensorboardX writes the same event files in pure Python.
"""

import os

import numpy as np
import tensorboardX


class MetricWriter:
  """`write_scalars(step, {name: value})` and `write_images(step, {name: uint8 HWC})`."""

  def __init__(self, logdir: str):
    os.makedirs(logdir, exist_ok=True)
    self._writer = tensorboardX.SummaryWriter(logdir)

  def write_scalars(self, step: int, scalars: dict) -> None:
    for name, value in scalars.items():
      self._writer.add_scalar(name, float(value), step)

  def write_images(self, step: int, images: dict) -> None:
    for name, image in images.items():
      self._writer.add_image(name, np.asarray(image), step, dataformats="HWC")

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()
