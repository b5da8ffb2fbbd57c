"""Seeded synthetic "dead leaves" images.

Occluding disks with power-law radii reproduce the scale invariance and sharp edges of
natural images; restoration networks trained on them do nearly as well as on photos
(Achddou, Gousseau & Ladjal, SSVM 2021). They let the offline default dataset grow
beyond the handful of photographs scikit-image ships.
"""

import numpy as np


def _radii(rng: np.random.Generator, n: int, r_min: float, r_max: float, alpha: float) -> np.ndarray:
  """Samples p(r) ∝ r^-alpha on [r_min, r_max] by inverting its CDF."""
  a = 1.0 - alpha
  u = rng.random(n)
  return (r_min**a + u * (r_max**a - r_min**a)) ** (1.0 / a)


def dead_leaves(
    size: int,
    rng: np.random.Generator,
    palette: np.ndarray,
    *,
    r_min: float = 1.5,
    r_max: float = 96.0,
    alpha: float = 3.0,
    supersample: int = 2,
) -> np.ndarray:
  """A (size, size, 3) uint8 dead-leaves image.

  Disks are laid front to back: each one paints only pixels not yet covered, until 99.9 %
  of the canvas is covered; the rest takes the last colour. Each disk gets a colour drawn
  from `palette` (an (N, 3) uint8 array of natural-image colours) and a gentle linear
  shading, then the canvas is box-downsampled by `supersample` to anti-alias the edges.
  """
  canvas_size = size * supersample
  canvas = np.zeros((canvas_size, canvas_size, 3), np.float32)
  covered = np.zeros((canvas_size, canvas_size), bool)
  remaining = canvas.shape[0] * canvas.shape[1]
  colour = palette[0].astype(np.float32)
  batch = 256
  while remaining > 0.001 * covered.size:
    radii = _radii(rng, batch, r_min * supersample, r_max * supersample, alpha)
    centres = rng.random((batch, 2)) * canvas_size
    colours = palette[rng.integers(0, len(palette), batch)].astype(np.float32)
    slopes = rng.normal(0.0, 12.0, (batch, 2)).astype(np.float32)
    for r, (cy, cx), colour, slope in zip(radii, centres, colours, slopes):
      y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 1, canvas_size)
      x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 1, canvas_size)
      if y0 >= y1 or x0 >= x1:
        continue
      dy = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
      dx = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
      free = ~covered[y0:y1, x0:x1]
      paint = (dy * dy + dx * dx <= r * r) & free
      if not paint.any():
        continue
      shading = (slope[0] * dy + slope[1] * dx) / r
      canvas[y0:y1, x0:x1][paint] = (colour + shading[..., None])[paint]
      covered[y0:y1, x0:x1] |= paint
      remaining -= int(paint.sum())
  canvas[~covered] = colour
  small = canvas.reshape(size, supersample, size, supersample, 3).mean(axis=(1, 3))
  return np.clip(np.round(small), 0, 255).astype(np.uint8)


def palette_from(photos: list[np.ndarray], rng: np.random.Generator, n: int = 4096) -> np.ndarray:
  """`n` colours sampled uniformly from the pixels of `photos` (uint8 RGB arrays)."""
  pixels = np.concatenate([p.reshape(-1, 3) for p in photos])
  return pixels[rng.integers(0, len(pixels), n)]
