"""Additive white Gaussian noise (denoising task): `y = clip(x + sigma/255 · N(0,1), 0, 1)`.

Clipped, because noisy test images are stored as images: the paper's CBSD68 σ=30 input
PSNR (19.03 dB) is above the unclipped value 20·log10(255/30) = 18.59 dB, which only
clipping explains (19.1 dB on the scikit-image astronaut, chelsea and coffee). Not
rounded to 8 bits.
"""

import dataclasses

import numpy as np

from tavit_jax.data.degradations import base
from tavit_jax.errors import TavitError


@dataclasses.dataclass(frozen=True)
class GaussianNoise:
  """`sigma` on the [0,255] scale."""

  sigma: float = 30.0
  margin: int = dataclasses.field(default=0, init=False)

  def __post_init__(self):
    if isinstance(self.sigma, bool) or not isinstance(self.sigma, (int, float)) or self.sigma < 0:
      raise TavitError(f"degradation 'gaussian_noise': sigma must be a number >= 0 "
                       f"(on the [0,255] scale), got {self.sigma!r}")

  def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    clean = base.as_image(clean)
    noise = rng.standard_normal(clean.shape, dtype=np.float32)
    noise *= np.float32(self.sigma / 255)
    noise += clean
    return np.clip(noise, 0, 1, out=noise)
