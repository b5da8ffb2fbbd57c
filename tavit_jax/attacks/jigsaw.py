"""A jigsaw attacker: place shuffled tokens by their predicted neighbours.

The head's receptive field overlaps neighbouring tokens, so a token says something about
the tokens right of and below it even when it carries no position. A scorer, trained on
auxiliary patches in order, gives for each pair (i, j) of one sample's tokens how likely
j is i's right (and lower) neighbour, and for each token how likely it lies on each edge
of the grid; a greedy solver fills the grid row by row with the best-fitting token left.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from tavit_jax.attacks import decoders

EDGES = ("left", "right", "top", "bottom")


class NeighbourScorer(nn.Module):
  """Tokens (B, N, C) → right and down pair logits (B, N, N) each, edge logits (B, N, 4)."""

  width: int = 128

  @nn.compact
  def __call__(self, tokens):
    h = nn.gelu(nn.Dense(self.width)(tokens))
    h = nn.gelu(nn.Dense(self.width)(h))
    scale = self.width ** -0.5
    pair = lambda name: jnp.einsum("bic,bjc->bij", nn.Dense(self.width, name=f"{name}_from")(h),
                                   nn.Dense(self.width, name=f"{name}_to")(h)) * scale
    return pair("right"), pair("down"), nn.Dense(len(EDGES))(h)


def _targets(side: int):
  """For the grid in order: right and down neighbour indices (-1 at the edge), edge flags."""
  rows, cols = np.divmod(np.arange(side * side), side)
  right = np.where(cols < side - 1, np.arange(side * side) + 1, -1)
  down = np.where(rows < side - 1, np.arange(side * side) + side, -1)
  edges = np.stack([cols == 0, cols == side - 1, rows == 0, rows == side - 1], -1)
  return right, down, edges.astype(np.float32)


def _pair_loss(logits, target):
  valid = target >= 0
  log_p = jax.nn.log_softmax(logits, axis=-1)
  picked = jnp.take_along_axis(log_p, jnp.maximum(target, 0)[None, :, None], axis=-1)[..., 0]
  return -jnp.sum(picked * valid) / (valid.sum() * logits.shape[0])


def fit(features, aux, side: int, steps: int, lr: float, seed: int):
  """(score, loss): `score(tokens (B, N, C))` → numpy (right, down, edges) log-probabilities
  after `steps` Adam steps on auxiliary patches; `features(x, key)` gives tokens in order."""
  scorer = NeighbourScorer()
  right, down, edges = (jnp.asarray(t) for t in _targets(side))
  key = jax.random.PRNGKey(seed)
  tokens = lambda x, key: (lambda f: f.reshape(f.shape[0], -1, f.shape[-1]))(features(x, key))
  params = scorer.init(key, tokens(jnp.asarray(next(aux)), key))

  def loss_fn(params, x, key):
    r, d, e = scorer.apply(params, tokens(x, key))
    edge_loss = optax.sigmoid_binary_cross_entropy(e, jnp.broadcast_to(edges, e.shape)).mean()
    return _pair_loss(r, right) + _pair_loss(d, down) + edge_loss

  params, loss = decoders.adam_steps(loss_fn, params, aux, steps, lr, key)

  @jax.jit
  def score(t):
    r, d, e = scorer.apply(params, t)
    return (jax.nn.log_softmax(r, -1), jax.nn.log_softmax(d, -1), jax.nn.log_sigmoid(e),
            jax.nn.log_sigmoid(-e))

  return lambda t: tuple(np.asarray(a) for a in score(jnp.asarray(t))), loss


def solve(log_right: np.ndarray, log_down: np.ndarray, log_edge: np.ndarray,
          log_inner: np.ndarray, side: int) -> np.ndarray:
  """(N,) the slot placed at each grid position, row by row: the unplaced token that best
  continues its left and upper neighbours and fits the edges of its position."""
  n = side * side
  grid = np.full(n, -1)
  free = np.ones(n, bool)
  for position in range(n):
    row, col = divmod(position, side)
    on_edge = (col == 0, col == side - 1, row == 0, row == side - 1)
    score = sum(np.where(flag, log_edge[:, k], log_inner[:, k]) for k, flag in enumerate(on_edge))
    if col > 0:
      score = score + log_right[grid[position - 1]]
    if row > 0:
      score = score + log_down[grid[position - side]]
    score = np.where(free, score, -np.inf)
    grid[position] = int(np.argmax(score))
    free[grid[position]] = False
  return grid


def placements(score, tokens: np.ndarray, side: int) -> np.ndarray:
  """(B, N_slots) the position the jigsaw gives every received slot."""
  log_right, log_down, log_edge, log_inner = score(tokens)
  placed = np.full(tokens.shape[:2], -1)
  for b in range(tokens.shape[0]):
    grid = solve(log_right[b], log_down[b], log_edge[b], log_inner[b], side)
    placed[b, grid] = np.arange(side * side)
  return placed
