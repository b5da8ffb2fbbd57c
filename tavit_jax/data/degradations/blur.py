"""Camera-shake motion blur (deblurring task), from the kernel bank of `trajectories`.

A sensor integrates light, so the blur is applied in linear light: x**2.2, FFT
convolution per channel, then back with **(1/2.2). Boundaries are symmetric padding by
the kernel radius, so a patch degraded with `margin` pixels of context has exactly the
centre of the degraded full image.
"""

import dataclasses

import numpy as np
import scipy.fft

from tavit_jax.data.degradations import base, trajectories

PARTS = ("train", "test")


def _convolve_valid(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
  """'valid' convolution of each channel of (H, W, C) by an FFT of the input's size only.

  Circular convolution wraps only into the first kernel-size − 1 outputs, which 'valid'
  drops; this is ~1.7× faster than `scipy.signal.fftconvolve`, which pads to full size.
  """
  channels = np.ascontiguousarray(image.transpose(2, 0, 1))
  h, w = channels.shape[1:]
  shape = (scipy.fft.next_fast_len(h, True), scipy.fft.next_fast_len(w, True))
  spectrum = scipy.fft.rfft2(channels, shape)
  spectrum *= scipy.fft.rfft2(kernel, shape)
  kh, kw = kernel.shape
  return scipy.fft.irfft2(spectrum, shape)[:, kh - 1:h, kw - 1:w].transpose(1, 2, 0)


def blur(clean: np.ndarray, kernel: np.ndarray, gamma: float = 2.2) -> np.ndarray:
  """Blurs float32 (H, W, 3) in [0,1] with a centred, odd-sized kernel that sums to 1."""
  # Drop the all-zero rim (keeping the kernel centred): same result, smaller FFT.
  rows, cols = np.nonzero(kernel)
  cy, cx = kernel.shape[0] // 2, kernel.shape[1] // 2
  ry = int(np.abs(rows - cy).max(initial=0))
  rx = int(np.abs(cols - cx).max(initial=0))
  kernel = kernel[cy - ry:cy + ry + 1, cx - rx:cx + rx + 1]
  linear = np.power(np.clip(clean, 0, 1), np.float32(gamma))
  linear = np.pad(linear, ((ry, ry), (rx, rx), (0, 0)), mode="symmetric")
  blurred = _convolve_valid(linear, kernel)
  blurred = np.power(np.clip(blurred, 0, 1), np.float32(1 / gamma))
  return blurred.astype(np.float32, copy=False)


@dataclasses.dataclass(frozen=True)
class MotionBlur:
  """A kernel drawn from the bank's `part`: 'train' for training, 'test' for evaluation."""

  part: str = "train"
  margin: int = dataclasses.field(default=trajectories.CENTRE, init=False)

  def __post_init__(self):
    base.check_choice("motion_blur", "part", self.part, PARTS)

  def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    kernels = trajectories.part(self.part)
    return blur(base.as_image(clean), kernels[rng.integers(len(kernels))])
