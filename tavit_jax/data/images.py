"""Reading any image file as 8-bit RGB, with errors that name the file.

Datasets in the wild mix grayscale, RGBA, palette and 16-bit files; every builder
funnels through `read_rgb8` so the rest of the library only ever sees uint8 RGB.
"""

import io
import os
from typing import Union

import numpy as np
import PIL.Image

from tavit_jax.errors import BadImageError

PathLike = Union[str, os.PathLike]


def to_rgb8(image: PIL.Image.Image) -> np.ndarray:
  """Converts a decoded PIL image of any common mode to an (H, W, 3) uint8 array."""
  if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
    array = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16") or array.max(initial=0) > 255:
      array = array / 257.0  # 16-bit full range -> 8-bit full range.
    gray = np.clip(np.round(array), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)
  if image.mode != "RGB":
    image = image.convert("RGB")  # L, LA, P, RGBA (alpha dropped), CMYK, YCbCr, 1.
  return np.asarray(image, dtype=np.uint8)


def decode_rgb8(data: bytes, name: str) -> np.ndarray:
  """Decodes encoded image bytes; `name` is used in the error message."""
  if not data:
    raise BadImageError(f"{name}: empty file (0 bytes)")
  try:
    with PIL.Image.open(io.BytesIO(data)) as image:
      image.load()
      array = to_rgb8(image)
  except PIL.UnidentifiedImageError:
    raise BadImageError(f"{name}: not an image (unrecognised file format)") from None
  except (OSError, ValueError, SyntaxError, PIL.Image.DecompressionBombError) as e:
    raise BadImageError(f"{name}: not a readable image ({e})") from None
  if array.size == 0:
    raise BadImageError(f"{name}: image has zero size")
  return array


def read_rgb8(path: PathLike) -> np.ndarray:
  """Reads an image file as (H, W, 3) uint8 RGB; a bad file raises BadImageError naming it."""
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise BadImageError(f"{path}: cannot open ({e.strerror})") from None
  return decode_rgb8(data, str(path))


def encode_png(array: np.ndarray) -> bytes:
  """Lossless PNG bytes of a uint8 RGB array (what `tfds.features.Image` stores)."""
  buffer = io.BytesIO()
  PIL.Image.fromarray(np.asarray(array, np.uint8)).save(buffer, format="PNG", compress_level=1)
  return buffer.getvalue()


def to_unit(array: np.ndarray) -> np.ndarray:
  """uint8 [0, 255] -> float32 [0, 1]."""
  return np.asarray(array, np.float32) / 255.0


def to_uint8(array: np.ndarray) -> np.ndarray:
  """float [0, 1] -> uint8 with rounding and clipping."""
  return np.clip(np.round(np.asarray(array) * 255.0), 0, 255).astype(np.uint8)
