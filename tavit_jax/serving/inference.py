"""Restoring images from notebooks and scripts:

  restorer = inference.load("exported/deraining")  # or a training workdir (+ client, step)
  clean = restorer.restore_image(rainy_uint8, stride=16)
"""

import os
from typing import Callable, Optional

import jax
import numpy as np

from tavit_jax import files
from tavit_jax.errors import TavitError
from tavit_jax.evaluation import tiling
from tavit_jax.serving import artifact, sources


class Restorer:
  """One client's restoration network with its parameters on the default device."""

  def __init__(self, fn: Callable, params: dict, info: dict):
    self._fn = jax.jit(fn)
    self._params = jax.device_put(params)
    self.info = info

  @property
  def task(self) -> str:
    return self.info["task"]

  @property
  def client(self) -> str:
    return self.info["client"]

  @property
  def step(self) -> Optional[int]:
    """Training step of the checkpoint; None for imported parameters."""
    return self.info["step"]

  @property
  def patch_size(self) -> int:
    return self.info["patch_size"]

  def __repr__(self):
    return (f"Restorer({self.client}, task={self.task}, step={self.step}, "
            f"patch_size={self.patch_size}, source={self.info['source']})")

  def restore_patches(self, patches) -> np.ndarray:
    """float32 (n, P, P, 3) in [-1, 1] -> the same; each new n compiles once."""
    patches = np.asarray(patches, np.float32)
    expected = (self.patch_size, self.patch_size, 3)
    if patches.ndim != 4 or patches.shape[1:] != expected:
      raise ValueError(f"patches must be (n, {', '.join(map(str, expected))}), got {patches.shape}")
    return np.asarray(self._fn(self._params, patches))

  def restore_image(self, image, *, stride: int = 16, batch_size: int = 64,
                    blend: str = "uniform",
                    progress: Optional[tiling.ProgressFn] = None) -> np.ndarray:
    """A uint8 (H, W, 3) image of any size, by the paper's overlapping patches
    (docs/design.md §3.4; `blend` as in `tiling.restore_image`)."""
    return tiling.restore_image(self.restore_patches, image, patch_size=self.patch_size,
                                stride=stride, batch_size=batch_size, blend=blend,
                                progress=progress)


def load(path: str, client: Optional[str] = None, step: Optional[int] = None) -> Restorer:
  """An exported model (`tavit-export`), a training workdir or imported parameters.

  For a workdir, `client` is a client name or a task (its first client), and `step` a
  checkpoint (default: latest); for single-model folders they may only confirm it.
  """
  path = files.resolve(path)
  if os.path.isdir(path) and artifact.is_artifact(path):
    params, program, info = artifact.read(path)
    sources.check_choice(path, info, client, step)
    return Restorer(program.call, params, info)
  if os.path.exists(path) and not os.path.isdir(path):
    raise TavitError(f"{path}: a file; give the folder of an exported model or a training workdir")
  if os.path.isfile(os.path.join(path, artifact.PROGRAM_FILE)):
    raise TavitError(f"{os.path.join(path, artifact.INFO_FILE)}: missing (incomplete export?); "
                     "export again")
  trained = sources.open_trained(path, client, step)
  return Restorer(trained.restore_fn(), trained.params, trained.info)
