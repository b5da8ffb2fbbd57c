"""Decoders from received tokens back to the client's patch, and their training."""

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax


class Inverter(nn.Module):
  """Tokens on their grid (B, h, w, C) → patch (B, P, P, 3): convolutions and ×2 upsamplings."""

  upsamplings: int
  width: int = 64

  @nn.compact
  def __call__(self, f):
    x = nn.relu(nn.Conv(self.width, (3, 3))(f))
    for _ in range(self.upsamplings):
      b, h, w, c = x.shape
      x = jax.image.resize(x, (b, 2 * h, 2 * w, c), "nearest")
      x = nn.relu(nn.Conv(self.width, (3, 3))(x))
    return jnp.tanh(nn.Conv(3, (3, 3))(x))


class SetDecoder(nn.Module):
  """Tokens in any order (B, h, w, C) → patch: a permutation-invariant attacker.

  One learned query per output position attends over the received token set (which has
  no order), twice; the answers, on the grid, go through an `Inverter`. Whatever content
  tells a token's place, this can learn to use; where nothing does, it learns the best
  guess from the set."""

  upsamplings: int
  width: int = 64
  heads: int = 4

  @nn.compact
  def __call__(self, f):
    b, h, w, c = f.shape
    tokens = nn.Dense(self.width)(f.reshape(b, h * w, c))
    queries = self.param("queries", nn.initializers.normal(0.02), (h * w, self.width))
    x = jnp.broadcast_to(queries, (b, h * w, self.width))
    for _ in range(2):
      x = nn.LayerNorm()(x + nn.MultiHeadDotProductAttention(num_heads=self.heads)(x, tokens))
      x = nn.LayerNorm()(x + nn.Dense(self.width)(nn.relu(nn.Dense(2 * self.width)(x))))
    return Inverter(self.upsamplings, self.width)(x.reshape(b, h, w, self.width))


def upsamplings(patch_size: int, token_side: int) -> int:
  return int(np.log2(patch_size // token_side))


def adam_steps(loss_fn: Callable, params, aux, steps: int, lr: float, key):
  """(params, final loss) after `steps` Adam steps of `loss_fn(params, x, key)` on the
  auxiliary batches `aux`, each step with its own key folded from `key`."""
  tx = optax.adam(lr)
  opt = tx.init(params)

  @jax.jit
  def step(params, opt, x, key):
    loss, grads = jax.value_and_grad(loss_fn)(params, x, key)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt, loss

  loss = jnp.nan
  for i in range(steps):
    params, opt, loss = step(params, opt, jnp.asarray(next(aux)), jax.random.fold_in(key, i))
  return params, float(loss)


def fit(decoder: nn.Module, features: Callable, aux, steps: int, lr: float, seed: int):
  """(apply, final loss): `steps` Adam steps of MSE(decoder(features(x, key)), x) on
  auxiliary patches `aux` (an iterator of (B, P, P, 3) arrays); `apply(tokens)` decodes."""
  key = jax.random.PRNGKey(seed)
  params = decoder.init(key, features(jnp.asarray(next(aux)), key))
  loss_fn = lambda p, x, k: jnp.mean((decoder.apply(p, features(x, k)) - x) ** 2)
  params, loss = adam_steps(loss_fn, params, aux, steps, lr, key)
  return jax.jit(lambda tokens: decoder.apply(params, tokens)), loss
