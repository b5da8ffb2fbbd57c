"""Recovering the positions of shuffled tokens.

With query access (the server holds the client's head: FedAvg of heads and tails passes
through it), a ridge-regression probe from a token to its position, fitted on auxiliary
patches in order, scores every received token against every position; a Hungarian
assignment per sample turns the scores into a one-to-one placement. Without query access,
k-means of the tokens the server received groups those of one position; labelling each
cluster with its most frequent true position (an oracle, so an upper bound on this
attacker) gives every position a centroid to match against.
"""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize


def fit_probe(tokens: np.ndarray, ridge: float = 1e-2) -> np.ndarray:
  """(C + 1, N) weights from tokens in order (M, N, C) to one-hot positions, by ridge
  (unsent, all-zero tokens left out)."""
  m, n, c = tokens.shape
  x = np.concatenate([tokens.reshape(m * n, c), np.ones((m * n, 1))], axis=1).astype(np.float64)
  y = np.tile(np.eye(n), (m, 1))
  sent = np.any(tokens.reshape(m * n, c) != 0, axis=-1)
  x, y = x[sent], y[sent]
  return np.linalg.solve(x.T @ x + ridge * m * np.eye(c + 1), x.T @ y)


def probe_scores(weights: np.ndarray, tokens: np.ndarray) -> np.ndarray:
  """(B, N_slots, N) scores of each received token (B, N_slots, C) for each position."""
  ones = np.ones((*tokens.shape[:2], 1))
  return np.concatenate([tokens, ones], axis=-1) @ weights


def assign(scores: np.ndarray, sent: np.ndarray) -> np.ndarray:
  """(B, N_slots) recovered position of every slot, -1 for unsent (all-zero) slots: per
  sample the one-to-one placement with the highest total score."""
  placed = np.full(scores.shape[:2], -1)
  for b in range(scores.shape[0]):
    slots = np.flatnonzero(sent[b])
    rows, cols = optimize.linear_sum_assignment(scores[b, slots], maximize=True)
    placed[b, slots[rows]] = cols
  return placed


def kmeans(points: np.ndarray, k: int, iterations: int = 25, seed: int = 0):
  """((k, C) centroids, (M,) each point's nearest centroid): Lloyd's k-means of the points
  (M, C) from k random ones."""
  rng = np.random.default_rng(seed)
  centroids = jnp.asarray(points[rng.choice(len(points), k, replace=False)])
  points = jnp.asarray(points)

  @jax.jit
  def step(centroids):
    distance = (jnp.sum(points ** 2, 1)[:, None] - 2 * points @ centroids.T
                + jnp.sum(centroids ** 2, 1)[None])
    nearest = jnp.argmin(distance, axis=1)
    one_hot = jax.nn.one_hot(nearest, k)
    counts = one_hot.sum(0)[:, None]
    new = (one_hot.T @ points) / jnp.maximum(counts, 1)
    return jnp.where(counts > 0, new, centroids), nearest

  for _ in range(iterations):
    centroids, nearest = step(centroids)
  return np.asarray(centroids), np.asarray(nearest)


def cluster_centroids(tokens: np.ndarray, truth: np.ndarray, seed: int = 0):
  """((N, C) a centroid per position, purity): k-means into N clusters of the received
  tokens (M, N_slots, C) whose true positions are `truth` (M, N_slots); each position gets
  the cluster that holds most of its tokens (one-to-one). Purity: the share of tokens
  whose cluster's most frequent position is their own."""
  m, slots, c = tokens.shape
  n = slots
  centroids, nearest = kmeans(tokens.reshape(m * slots, c), n, seed=seed)
  counts = np.zeros((n, n))
  np.add.at(counts, (nearest, truth.reshape(-1)), 1)
  purity = counts.max(axis=1).sum() / counts.sum()
  clusters, positions = optimize.linear_sum_assignment(counts, maximize=True)
  by_position = np.zeros((n, c))
  by_position[positions] = centroids[clusters]
  return by_position, float(purity)


def centroid_scores(centroids: np.ndarray, tokens: np.ndarray) -> np.ndarray:
  """(B, N_slots, N): minus the squared distance of each token to each position's centroid."""
  return -(np.sum(tokens ** 2, -1)[..., None] - 2 * tokens @ centroids.T
           + np.sum(centroids ** 2, -1))


def place(tokens: np.ndarray, placed: np.ndarray, side: int) -> np.ndarray:
  """(B, h, w, C): each received token (B, N_slots, C) put at its recovered position."""
  b, _, c = tokens.shape
  grid = np.zeros((b, side * side, c), tokens.dtype)
  for i in range(b):
    ok = placed[i] >= 0
    grid[i, placed[i, ok]] = tokens[i, ok]
  return grid.reshape(b, side, side, c)


def accuracy(placed: np.ndarray, truth: np.ndarray) -> float:
  """The share of sent tokens put at their true position."""
  sent = placed >= 0
  return float(np.mean(placed[sent] == truth[sent]))
