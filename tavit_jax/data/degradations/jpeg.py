"""JPEG compression artefacts (deblocking task).

'pil' is a real codec (Pillow's libjpeg-turbo: IJG tables, 4:2:0 chroma subsampling,
8-bit pixels), i.e. what a JPEG file on disk holds. 'dct' is the paper's simulation:
BT.601 studio YCbCr, 8×8 orthonormal DCT-II on all three channels with the one IJG
luminance table, no chroma subsampling and no rounding of pixels; it is milder on colour
than a real codec and keeps floats.
"""

import dataclasses
import functools
import io
from typing import Tuple, Union

import numpy as np
import PIL.Image

from tavit_jax import color
from tavit_jax.data.degradations import base

METHODS = ("pil", "dct")

# ITU-T T.81 Annex K.1, the table libjpeg scales for luminance.
_IJG_LUMA = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61],
    [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77],
    [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101],
    [72, 92, 95, 98, 112, 100, 103, 99],
], np.int64)


@functools.cache
def quant_table(quality: int) -> np.ndarray:
  """The IJG luminance table at `quality` (libjpeg's integer formula, baseline-clipped)."""
  scale = 5000 // quality if quality < 50 else 200 - 2 * quality
  table = np.clip((_IJG_LUMA * scale + 50) // 100, 1, 255)
  return table.astype(np.float32)


@functools.cache
def _dct_matrix() -> np.ndarray:
  """Orthonormal 8-point DCT-II: row k is basis function k."""
  n = np.arange(8)
  d = np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / 16) * np.sqrt(2 / 8)
  d[0] /= np.sqrt(2)
  return d.astype(np.float32)


def pil_jpeg(clean: np.ndarray, quality: int) -> np.ndarray:
  """Encode + decode through Pillow; pixels are rounded to 8 bits first, as in any file."""
  pixels = np.round(np.clip(clean, 0, 1) * 255).astype(np.uint8)
  buffer = io.BytesIO()
  PIL.Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality, subsampling=2)
  buffer.seek(0)
  with PIL.Image.open(buffer) as decoded:
    return np.asarray(decoded.convert("RGB"), np.float32) * np.float32(1 / 255)


def dct_jpeg(clean: np.ndarray, quality: int) -> np.ndarray:
  """The paper's float simulation; the 8×8 grid starts at the top-left pixel."""
  h, w, _ = clean.shape
  pad = ((0, -h % 8), (0, -w % 8), (0, 0))
  x = np.pad(color.rgb_to_ycbcr(clean), pad, mode="symmetric") - np.float32(128)
  hb, wb = x.shape[0] // 8, x.shape[1] // 8
  blocks = x.reshape(hb, 8, wb, 8, 3).transpose(0, 2, 4, 1, 3)  # (hb, wb, 3, 8, 8)
  d, table = _dct_matrix(), quant_table(quality)
  coefficients = np.round((d @ blocks @ d.T) / table) * table
  blocks = d.T @ coefficients @ d
  x = blocks.transpose(0, 3, 1, 4, 2).reshape(hb * 8, wb * 8, 3)[:h, :w] + np.float32(128)
  return np.clip(color.ycbcr_to_rgb(x), 0, 1)


@dataclasses.dataclass(frozen=True)
class Jpeg:
  """JPEG at `quality` (an int, or a tuple drawn uniformly per call, e.g. (10, 50))."""

  quality: Union[int, Tuple[int, ...]] = (10, 50)
  method: str = "pil"
  margin: int = dataclasses.field(default=0, init=False)
  _qualities: tuple = dataclasses.field(default=(), init=False, repr=False, compare=False)

  def __post_init__(self):
    base.check_choice("jpeg", "method", self.method, METHODS)
    qualities = base.as_choices("jpeg", "quality", self.quality, range(1, 101), "integers 1..100")
    object.__setattr__(self, "_qualities", tuple(int(q) for q in qualities))

  def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    codec = pil_jpeg if self.method == "pil" else dct_jpeg
    return codec(base.as_image(clean), base.pick(self._qualities, rng))
