"""Image-quality metrics with the conventions of the restoration literature (docs/design.md §3.5).

All functions take float images in [0, 1], shaped (..., H, W, C), and are jittable.
PSNR/SSIM come from dm-pix (Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, 'valid'
filtering, matching MATLAB/BasicSR); Y is BT.601 studio-range luma, which dm-pix's
`rgb_to_grayscale` is not.
"""

import math
from typing import Sequence

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np

from tavit_jax import color

# What each task reports besides RGB PSNR/SSIM (the paper's own numbers are RGB).
TASK_METRICS = {
    "deblocking": ("psnr", "ssim", "psnr_y", "ssim_y", "psnrb_y"),
    "denoising": ("psnr", "ssim"),
    "deraining": ("psnr", "ssim", "psnr_y", "ssim_y"),
    "deblurring": ("psnr", "ssim"),
}


def rgb_to_y(rgb):
  """BT.601 studio-range luma, scaled to [0, 1] by 255 like the 8-bit convention."""
  return (color.luma(jnp.asarray(rgb, jnp.float32)) / 255.0)[..., None]


def psnr(a, b):
  """PSNR in dB for a data range of 1 (i.e. 255 on the 8-bit scale)."""
  return dm_pix.psnr(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))


# The 11-tap Gaussian window (sigma 1.5) as a constant. dm-pix builds it with jnp, which
# jax>=0.10's jnp.convolve rejects under jit, so we hand dm-pix this filter instead.
_WINDOW = np.exp(-0.5 * ((np.arange(11) - 5) / 1.5) ** 2)
_WINDOW /= _WINDOW.sum()


def _filter_axis(z, axis: int):
  z = jnp.moveaxis(z, axis, -1)
  rows = z.reshape(-1, z.shape[-1])
  filtered = jax.vmap(lambda r: jnp.convolve(r, _WINDOW, mode="valid", precision="highest"))(rows)
  return jnp.moveaxis(filtered.reshape(z.shape[:-1] + (-1,)), -1, axis)


def _gaussian_filter(z):
  """'valid' separable Gaussian filtering over the H and W axes of (..., H, W, C)."""
  return _filter_axis(_filter_axis(z, -3), -2)


def ssim(a, b):
  """Mean SSIM over pixels and channels with the Gaussian window of Wang et al."""
  return dm_pix.ssim(
      jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32), max_val=1.0,
      filter_fn=_gaussian_filter)


def _jump_energy(x, axis: int, block: int):
  """Squared neighbour differences along `axis`: (across block boundaries, inside blocks)."""
  d2 = jnp.square(jnp.diff(x, axis=axis))
  at_boundary = (np.arange(x.shape[axis] - 1) + 1) % block == 0
  return (jnp.take(d2, np.flatnonzero(at_boundary), axis=axis),
          jnp.take(d2, np.flatnonzero(~at_boundary), axis=axis))


def blocking_effect_factor(x, block: int = 8):
  """BEF of Yim & Bovik (2011): excess squared jump across block boundaries, per image."""
  x = jnp.asarray(x, jnp.float32)
  image_axes = (-3, -2, -1)
  bh, ih = _jump_energy(x, -2, block)
  bv, iv = _jump_energy(x, -3, block)
  d_boundary = (jnp.sum(bh, image_axes) + jnp.sum(bv, image_axes)) / max(
      math.prod(bh.shape[-3:]) + math.prod(bv.shape[-3:]), 1)
  d_interior = (jnp.sum(ih, image_axes) + jnp.sum(iv, image_axes)) / max(
      math.prod(ih.shape[-3:]) + math.prod(iv.shape[-3:]), 1)
  eta = math.log2(block) / math.log2(min(x.shape[-3], x.shape[-2]))
  return jnp.where(d_boundary > d_interior, eta * (d_boundary - d_interior), 0.0)


def psnr_b(reference, test, block: int = 8):
  """PSNR-B: PSNR with the test image's blocking effect factor added to the MSE."""
  reference = jnp.asarray(reference, jnp.float32)
  test = jnp.asarray(test, jnp.float32)
  mse = jnp.mean(jnp.square(reference - test), axis=(-3, -2, -1))
  return -10.0 * jnp.log10(mse + blocking_effect_factor(test, block))


_METRICS = {
    "psnr": lambda out, tgt: psnr(out, tgt),
    "ssim": lambda out, tgt: ssim(out, tgt),
    "psnr_y": lambda out, tgt: psnr(rgb_to_y(out), rgb_to_y(tgt)),
    "ssim_y": lambda out, tgt: ssim(rgb_to_y(out), rgb_to_y(tgt)),
    "psnrb_y": lambda out, tgt: psnr_b(rgb_to_y(tgt), rgb_to_y(out)),
}


def compute(names: Sequence[str], output, target) -> dict:
  """The named metrics of `output` against `target`, each per image."""
  unknown = sorted(set(names) - set(_METRICS))
  if unknown:
    raise ValueError(f"unknown metrics {unknown}; known: {sorted(_METRICS)}")
  return {name: _METRICS[name](output, target) for name in names}


def for_task(task: str, output, target) -> dict:
  """The task's conventional metrics (TASK_METRICS) of `output` against `target`."""
  return compute(TASK_METRICS[task], output, target)
