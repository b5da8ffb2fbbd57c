"""A seeded bank of camera-shake blur kernels, in the manner of Boracchi & Foi (2012).

Each kernel is a random 2-D camera trajectory: a unit-speed walk whose velocity keeps
its direction (inertia), is nudged by Gaussian jitter and by rare impulsive shakes, and
is pulled back toward the start (centripetal term), so it wanders, curls and jerks like
a hand-held camera. The part seen during a random exposure fraction is scaled to a random
extent, moved so that its sample mean sits on the centre pixel and splatted bilinearly
onto a SIZE×SIZE grid. Bilinear splatting preserves the first moment, so each kernel's
centre of mass is exactly the centre (a blur then moves no edge on average, so PSNR
measures blur rather than a shift).

All kernels are drawn together, vectorised over the bank (~60 ms for 200), so no
disk cache is needed; `bank` is cached per process.
"""

import functools

import numpy as np

SIZE = 31  # Kernel support; the radius SIZE // 2 is the blur's margin.
CENTRE = SIZE // 2


def _walks(rng: np.random.Generator, count: int, steps: int) -> np.ndarray:
  """(count, steps) complex positions of unit-speed shaky walks starting at 0."""
  anxiety = rng.uniform(0.0, 1.0, (count, 1))
  jitter = 0.04 * anxiety * (rng.standard_normal((count, steps)) +
                            1j * rng.standard_normal((count, steps)))
  shaken = rng.random((count, steps)) < 0.003
  jitter += shaken * 1.5 * anxiety * np.exp(2j * np.pi * rng.random((count, steps)))
  centripetal = rng.uniform(0.0, 0.04, count) / steps
  velocity = np.exp(2j * np.pi * rng.random(count))
  position = np.zeros(count, np.complex128)
  path = np.empty((count, steps), np.complex128)
  for t in range(steps):
    path[:, t] = position
    velocity = velocity + jitter[:, t] - centripetal * position
    velocity /= np.maximum(np.abs(velocity), 1e-12)
    position = position + velocity
  return path


def _splat(points: np.ndarray, weights: np.ndarray) -> np.ndarray:
  """Bilinear splatting of (count, n) complex points (x + iy, in pixels) onto kernels."""
  count = points.shape[0]
  x, y = points.real, points.imag
  x0, y0 = np.floor(x), np.floor(y)
  fx, fy = x - x0, y - y0
  base = (np.arange(count)[:, None] * SIZE * SIZE + y0.astype(np.int64) * SIZE
          + x0.astype(np.int64))
  kernels = np.zeros(count * SIZE * SIZE)
  for offset, w in ((0, (1 - fx) * (1 - fy)), (1, fx * (1 - fy)),
                    (SIZE, (1 - fx) * fy), (SIZE + 1, fx * fy)):
    kernels += np.bincount((base + offset).ravel(), (w * weights).ravel(), count * SIZE * SIZE)
  return kernels.reshape(count, SIZE, SIZE)


@functools.cache
def bank(count: int = 200, seed: int = 0, steps: int = 1000,
         min_extent: float = 5.0, max_extent: float = 27.0) -> np.ndarray:
  """(count, SIZE, SIZE) float32 kernels, each non-negative, summing to 1, centred.

  `min_extent`..`max_extent` is the range of the larger side (pixels) of the exposed
  trajectory's bounding box. Read-only: it is shared by every caller in the process.
  """
  rng = np.random.default_rng(seed)
  path = _walks(rng, count, steps)
  exposure = rng.uniform(0.5, 1.0, (count, 1))
  seen = (np.arange(steps)[None, :] <= exposure * (steps - 1)).astype(np.float64)
  mean = (path * seen).sum(1, keepdims=True) / seen.sum(1, keepdims=True)
  # Unseen samples sit at the mean (inside the seen hull) with weight 0: they change
  # neither the extent nor the kernel.
  path = (path - mean) * seen
  side = np.maximum(np.ptp(path.real, axis=1), np.ptp(path.imag, axis=1))
  reach = np.abs(path).max(1)
  extent = rng.uniform(min_extent, max_extent, count)
  # Larger side to `extent`, but no seen point further than CENTRE - 0.5 px out.
  scale = np.minimum(extent / np.maximum(side, 1e-9), (CENTRE - 0.5) / np.maximum(reach, 1e-9))
  kernels = _splat(CENTRE * (1 + 1j) + path * scale[:, None], seen)
  kernels = kernels.astype(np.float32)
  kernels /= kernels.sum((1, 2), keepdims=True)
  kernels.flags.writeable = False
  return kernels


def part(name: str) -> np.ndarray:
  """The 'train' kernels (all but the last 20) or the disjoint 'test' ones (last 20)."""
  kernels = bank()
  return kernels[:-20] if name == "train" else kernels[-20:]
