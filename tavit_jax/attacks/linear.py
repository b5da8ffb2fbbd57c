"""The best linear attackers, in closed form: ridge regression from a token and its grid
neighbours to the pixels under it, and from a patch's token set to its mean colour.

The trained decoders need a training budget, and a weak one can fall below the patch-mean
baseline without the tokens being empty. This one has no budget to argue about: it is
the least-squares linear estimate of each pixel block from the 3×3 tokens around it,
fitted on auxiliary patches sent through the client's head (with the wire's clipping
and noise, fresh per patch), with the ridge weight chosen on held-out auxiliary patches.
Against additive Gaussian noise that is the Wiener estimate; where the tokens carry
nothing it falls back to the auxiliary data's mean block instead of below it. The set
attacker needs no positions at all: it estimates the patch-mean baseline itself, so a
defence that leaves the tokens' mean colour readable shows here at about +0 dB.
"""

import numpy as np

RIDGES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)  # Times the mean feature energy.


def neighbourhoods(grid: np.ndarray) -> np.ndarray:
  """(B, h·w, 9C + 1): each token with its 8 grid neighbours (zero beyond the border) and a
  constant 1, row-major."""
  b, h, w, c = grid.shape
  padded = np.pad(grid, ((0, 0), (1, 1), (1, 1), (0, 0)))
  shifted = [padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)]
  features = np.concatenate(shifted, axis=-1).reshape(b, h * w, 9 * c)
  return np.concatenate([features, np.ones((b, h * w, 1), features.dtype)], axis=-1)


def blocks(patches: np.ndarray, side: int) -> np.ndarray:
  """(B, side², s·s·3): the pixels under each token of (B, P, P, 3) patches, s = P/side."""
  b, p = patches.shape[:2]
  s = p // side
  return (patches.reshape(b, side, s, side, s, 3).transpose(0, 1, 3, 2, 4, 5)
          .reshape(b, side * side, s * s * 3))


def unblock(values: np.ndarray, side: int, p: int) -> np.ndarray:
  """The inverse of `blocks`: (B, side², s·s·3) → (B, P, P, 3)."""
  b, s = values.shape[0], p // side
  return (values.reshape(b, side, side, s, s, 3).transpose(0, 1, 3, 2, 4, 5)
          .reshape(b, p, p, 3))


def fit(grids: np.ndarray, patches: np.ndarray, held_out: float = 0.25):
  """(weights (9C + 1, s·s·3), chosen ridge, held-out MSE) from tokens on their grid
  (M, h, w, C) of auxiliary patches (M, P, P, 3) in [-1, 1]."""
  return _fit(neighbourhoods(np.asarray(grids, np.float64)),
              blocks(np.asarray(patches, np.float64), grids.shape[1]), held_out)


def set_means(tokens: np.ndarray) -> np.ndarray:
  """(B, 1, C + 1): the mean of each patch's sent (non-zero) tokens (B, N, C), and a 1.
  It needs no order: the set is what the server receives, shuffled or not."""
  tokens = np.asarray(tokens, np.float64)
  sent = np.any(tokens != 0, axis=-1, keepdims=True)
  mean = (tokens * sent).sum(1) / np.maximum(sent.sum(1), 1)
  return np.concatenate([mean, np.ones((len(mean), 1))], axis=-1)[:, None]


def fit_set_mean(tokens: np.ndarray, patches: np.ndarray, held_out: float = 0.25):
  """(weights (C + 1, 3), chosen ridge, held-out MSE): each patch's mean colour from the
  mean of its tokens (M, N, C), the patch-mean picture estimated without positions. Noise
  on the tokens averages out over a patch's N tokens."""
  colours = np.asarray(patches, np.float64).mean(axis=(1, 2))[:, None]
  return _fit(set_means(tokens), colours, held_out)


def decode_set_mean(weights: np.ndarray, tokens: np.ndarray, patch_size: int) -> np.ndarray:
  """(B, P, P, 3): every patch filled with the colour estimated from its token set."""
  colours = np.clip(set_means(tokens)[:, 0] @ weights, -1, 1).astype(np.float32)
  return np.broadcast_to(colours[:, None, None], (len(colours), patch_size, patch_size, 3))


def decode(weights: np.ndarray, grids: np.ndarray, patch_size: int) -> np.ndarray:
  """(B, P, P, 3) in [-1, 1] from received tokens put on their grid (B, h, w, C)."""
  values = neighbourhoods(np.asarray(grids, np.float64)) @ weights
  return np.clip(unblock(values, grids.shape[1], patch_size), -1, 1).astype(np.float32)


def _fit(x: np.ndarray, y: np.ndarray, held_out: float):
  """Ridge from features (M, K, F) to targets (M, K, D): the weight (of `RIDGES`) with the
  lowest MSE on the last `held_out` share of the M samples, then refitted on all."""
  split = min(len(x) - 1, max(1, int(round(len(x) * (1 - held_out)))))
  flat = lambda a: a.reshape(-1, a.shape[-1])
  best = None
  for ridge in RIDGES:
    weights = _solve(flat(x[:split]), flat(y[:split]), ridge)
    mse = float(np.mean((flat(x[split:]) @ weights - flat(y[split:])) ** 2))
    if best is None or mse < best[1]:
      best = (ridge, mse)
  return _solve(flat(x), flat(y), best[0]), best[0], best[1]


def _solve(x: np.ndarray, y: np.ndarray, ridge: float) -> np.ndarray:
  """Ridge with the intercept (the last, constant column) not shrunk: at a large weight
  the estimate is the mean block."""
  gram = x.T @ x
  penalty = np.eye(len(gram))
  penalty[-1, -1] = 0.0
  scale = ridge * np.trace(gram[:-1, :-1]) / max(1, len(gram) - 1)
  return np.linalg.solve(gram + scale * penalty, x.T @ y)
