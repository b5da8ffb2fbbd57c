"""Full-image inference by overlapping patches, as in the paper (docs/design.md §3.4).

The model only ever sees fixed-size patches, so any image is restored by reflect-padding
it, cutting every P×P patch at a given stride, restoring them in fixed-size batches and
averaging the overlaps back together. Model-agnostic: it takes any patch -> patch callable.

`blend='uniform'` is the paper's plain average. A model that is not yet good makes patch
estimates that disagree, and their plain average changes abruptly where a patch's border
falls: a faint grid at the stride. `blend='weighted'` (not in the paper) weights each
estimate by a tent that falls from the patch's centre to 1/(P/2) at its border, so the
estimates cross-fade and the grid disappears; a model whose estimates agree gives the same
image either way.
"""

from typing import Callable, Optional

import numpy as np

PatchFn = Callable[[np.ndarray], np.ndarray]
ProgressFn = Callable[[int, int], None]
BLENDS = ("uniform", "weighted")


def _check_geometry(patch_size: int, stride: int) -> None:
  if patch_size < 1:
    raise ValueError(f"patch_size must be >= 1, got {patch_size}")
  if not 1 <= stride <= patch_size:
    raise ValueError(
        f"stride must be in [1, patch_size={patch_size}] so patches cover the image, got {stride}")


def _padded_side(side: int, patch_size: int, stride: int) -> int:
  """The paper's 16·⌊side/16⌋+64 (docs/design.md §3.4), generalised; always > side, so every
  pixel is covered."""
  return stride * (side // stride) + patch_size


def _positions(side: int, patch_size: int, stride: int) -> np.ndarray:
  return np.arange(0, _padded_side(side, patch_size, stride) - patch_size + 1, stride)


def count_patches(height: int, width: int, *, patch_size: int = 64, stride: int = 16) -> int:
  """Patches `restore_image` cuts from a height×width image (for progress bars and costs)."""
  _check_geometry(patch_size, stride)
  return len(_positions(height, patch_size, stride)) * len(_positions(width, patch_size, stride))


def _window(patch_size: int, blend: str) -> np.ndarray:
  """Each pixel's weight along one side of a patch; 2-D weights are an outer product."""
  if blend not in BLENDS:
    raise ValueError(f"blend must be one of {BLENDS}, got {blend!r}")
  if blend == "uniform":
    return np.ones(patch_size, np.float64)
  i = np.arange(patch_size)
  return np.minimum(i + 1, patch_size - i).astype(np.float64)


def _coverage(side: int, patch_size: int, stride: int, window: np.ndarray) -> np.ndarray:
  """The summed weight of the patches covering each padded row (or column)."""
  counts = np.zeros(_padded_side(side, patch_size, stride), np.float64)
  for start in _positions(side, patch_size, stride):
    counts[start:start + patch_size] += window
  return counts


def restore_image(
    restore_patches: PatchFn,
    image: np.ndarray,
    *,
    patch_size: int = 64,
    stride: int = 16,
    batch_size: int = 64,
    blend: str = "uniform",
    progress: Optional[ProgressFn] = None,
) -> np.ndarray:
  """Restores a uint8 (H, W, C) image of any size with a patch model.

  Args:
    restore_patches: maps float32 (batch_size, P, P, C) in [-1, 1] to the same shape.
      It is only ever called with exactly that shape (the last batch is zero-padded), so
      a jitted model compiles once.
    image: uint8 (H, W, C); may be smaller than a patch.
    patch_size: P, the model's input side.
    stride: step between patches; larger is faster but averages fewer estimates.
    batch_size: patches per call.
    blend: 'uniform' (the paper's average of overlapping estimates) or 'weighted' (a tent
      window per patch, which hides the patch grid; see the module docstring).
    progress: optional `progress(num_done, num_total)`, called after each batch.

  Returns:
    The restored uint8 (H, W, C) image.
  """
  _check_geometry(patch_size, stride)
  window = _window(patch_size, blend)
  weights = np.outer(window, window)[..., None]
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or 0 in image.shape:
    raise ValueError(
        f"image must be a non-empty uint8 (H, W, C) array, got {image.dtype} {image.shape}")
  height, width, channels = image.shape

  pad_h = _padded_side(height, patch_size, stride) - height
  pad_w = _padded_side(width, patch_size, stride) - width
  # numpy's 'reflect' repeats the reflection when the pad exceeds the side, and falls back
  # to repeating the edge for a side of 1, so tiny images need no special case.
  padded = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
  padded = padded.astype(np.float32) / 127.5 - 1.0

  ys = _positions(height, patch_size, stride)
  xs = _positions(width, patch_size, stride)
  grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
  grid_y, grid_x = grid_y.ravel(), grid_x.ravel()
  # (Hp-P+1, Wp-P+1, C, P, P) view without copying, indexed by patch corner.
  windows = np.lib.stride_tricks.sliding_window_view(padded, (patch_size, patch_size), axis=(0, 1))
  total = len(grid_y)

  acc = np.zeros(padded.shape, np.float64)
  batch = np.zeros((batch_size, patch_size, patch_size, channels), np.float32)
  for start in range(0, total, batch_size):
    stop = min(start + batch_size, total)
    n = stop - start
    by, bx = grid_y[start:stop], grid_x[start:stop]
    batch[:n] = windows[by, bx].transpose(0, 2, 3, 1)
    batch[n:] = 0.0
    out = np.asarray(restore_patches(batch))
    if out.shape != batch.shape:
      raise ValueError(f"restore_patches returned shape {out.shape}, expected {batch.shape}")
    for y, x, patch in zip(by, bx, out[:n]):
      acc[y:y + patch_size, x:x + patch_size] += patch * weights
    if progress is not None:
      progress(stop, total)

  counts = np.outer(_coverage(height, patch_size, stride, window),
                    _coverage(width, patch_size, stride, window))
  restored = (acc / counts[..., None])[:height, :width]
  return np.clip(np.round((restored + 1.0) * 127.5), 0, 255).astype(np.uint8)
