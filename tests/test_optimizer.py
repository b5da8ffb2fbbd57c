"""Each side's optimizer: the learning-rate schedule over the updates that side makes."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from tavit_jax.errors import TavitError
from tavit_jax.training import protocols, state as state_lib


def train_config(**overrides) -> ml_collections.ConfigDict:
  """2 cycles of 10 client and 4 server steps."""
  return ml_collections.ConfigDict({**dict(
      mode="alternating", cycles=2, client_phase_steps=(10,), server_phase_steps=4,
      client_lr=1e-3, server_lr=5e-4, b1=0.5, b2=0.999, grad_clip=0.0, lr_decay="cosine",
      lr_hold=0.5), **overrides})


def phases(train):
  return protocols.make_schedule(train, 2)


def rates(tx, steps: int) -> np.ndarray:
  """The learning rate of each of `steps` updates: with a constant gradient, Adam's step is
  exactly the rate (m / sqrt(v) = 1 after bias correction)."""
  params, out = jnp.zeros(()), []
  opt = tx.init(params)
  for _ in range(steps):
    update, opt = tx.update(jnp.ones(()), opt, params)
    out.append(-float(update))
  return np.array(out)


def test_cosine_holds_then_decays_to_zero_over_each_sides_updates():
  client_tx, server_tx = state_lib.optimizers(train_config(), phases(train_config()))
  client = rates(client_tx, 20)  # 2 cycles × 10 client steps.
  np.testing.assert_allclose(client[:10], 1e-3, rtol=1e-4)  # Held for half of them...
  np.testing.assert_allclose(client[15], 0.5e-3, rtol=1e-3)  # ...halfway down the cosine...
  assert np.all(np.diff(client[10:]) < 0) and client[-1] < 0.03e-3  # ...and nearly 0 at the end.
  server = rates(server_tx, 8)  # 2 cycles × 4 server steps.
  np.testing.assert_allclose(server[:4], 5e-4, rtol=1e-4)
  np.testing.assert_allclose(server[6], 2.5e-4, rtol=1e-3)


def test_constant_rate_is_the_official_optimizer():
  client_tx, _ = state_lib.optimizers(train_config(lr_decay="constant"), phases(train_config()))
  np.testing.assert_allclose(rates(client_tx, 25), 1e-3, rtol=1e-4)


def test_unknown_decay_is_named():
  with pytest.raises(TavitError, match="train.lr_decay .* not 'linear'"):
    state_lib.optimizers(train_config(lr_decay="linear"), phases(train_config()))
