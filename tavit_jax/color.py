"""BT.601 studio-range YCbCr on [0,255], the colour space of the paper's JPEG simulation
and of the deraining literature's Y-channel PSNR (matches `skimage.color.rgb2ycbcr`).

Works on numpy and jax arrays alike (host degradations and jitted metrics share it).
"""

import numpy as np

# Rows give Y, Cb, Cr from R, G, B in [0,1]; the offsets are on [0,255].
_RGB_TO_YCBCR = np.array([
    [65.481, 128.553, 24.966],
    [-37.797, -74.203, 112.0],
    [112.0, -93.786, -18.214],
], np.float64)
_OFFSET = np.array([16.0, 128.0, 128.0], np.float64)
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
  """(..., 3) RGB in [0,1] -> (..., 3) YCbCr, Y in [16,235], Cb/Cr in [16,240]."""
  return rgb @ _RGB_TO_YCBCR.T.astype(rgb.dtype) + _OFFSET.astype(rgb.dtype)


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
  """Exact inverse of `rgb_to_ycbcr` (no clipping)."""
  dtype = ycbcr.dtype
  return (ycbcr - _OFFSET.astype(dtype)) @ _YCBCR_TO_RGB.T.astype(dtype)


def luma(rgb: np.ndarray) -> np.ndarray:
  """The Y channel alone, on [16,235]: what Y-PSNR is computed on."""
  return rgb @ _RGB_TO_YCBCR[0].astype(rgb.dtype) + np.asarray(16.0, rgb.dtype)
