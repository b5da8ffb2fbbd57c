"""Head inversion: the server holds the client's head (FedAvg of heads and tails passes
through it), so it can search for the patch whose f_H matches what it received.

Starting from a decoder's reconstruction, Adam on the patch itself (through tanh, so it
stays in [-1, 1]) minimises the squared distance between the head's clean output and the
received tokens at the positions placed, unsent tokens left out. Against noised tokens
this fits the noise as well: a decoder's guess may then be the better one.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax


@functools.partial(jax.jit, static_argnums=(0, 1))
def _step(model, lr: float, head, z, opt, target, sent):
  """One Adam step on the patch's pre-tanh values `z`."""
  timesteps = jnp.zeros((target.shape[0],), jnp.int32)

  def loss_fn(z):
    f_h, _ = model.head_apply(head, jnp.tanh(z), timesteps)
    return jnp.sum(jnp.where(sent, jnp.square(f_h - target), 0.0)) / jnp.maximum(sent.sum(), 1)

  updates, opt = optax.adam(lr).update(jax.grad(loss_fn)(z), opt, z)
  return optax.apply_updates(z, updates), opt


def invert(observer, received_grid: np.ndarray, start: np.ndarray, steps: int = 100,
           lr: float = 0.05) -> np.ndarray:
  """(n, P, P, 3) patches whose f_H matches `received_grid` (n, h, w, C), from `start`."""
  target = jnp.asarray(received_grid)
  sent = jnp.any(target != 0, axis=-1, keepdims=True)
  z = jnp.arctanh(jnp.clip(jnp.asarray(start), -0.999, 0.999))
  opt = optax.adam(lr).init(z)
  for _ in range(steps):
    z, opt = _step(observer.model, lr, observer.head, z, opt, target, sent)
  return np.asarray(jnp.tanh(z))
