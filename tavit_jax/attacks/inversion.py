"""Head inversion: the server holds the client's head (FedAvg of heads and tails passes
through it), so it can search for the patch whose f_H matches what it received.

Starting from a decoder's reconstruction, Adam on the patch itself (through tanh, so it
stays in [-1, 1]) minimises the squared distance between the head's clean output and the
received tokens at the positions placed, unsent tokens left out. Against noised tokens
this fits the noise as well: a decoder's guess may then be the better one.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax


def invert(observer, received_grid: np.ndarray, start: np.ndarray, steps: int = 200,
           lr: float = 0.05) -> np.ndarray:
  """(n, P, P, 3) patches whose f_H matches `received_grid` (n, h, w, C), from `start`."""
  model, head = observer.model, observer.head
  target = jnp.asarray(received_grid)
  sent = jnp.any(target != 0, axis=-1, keepdims=True)
  timesteps = jnp.zeros((target.shape[0],), jnp.int32)

  def loss_fn(z):
    f_h, _ = model.head_apply(head, jnp.tanh(z), timesteps)
    return jnp.sum(jnp.where(sent, jnp.square(f_h - target), 0.0)) / jnp.maximum(sent.sum(), 1)

  tx = optax.adam(lr)
  z = jnp.arctanh(jnp.clip(jnp.asarray(start), -0.999, 0.999))
  opt = tx.init(z)

  @jax.jit
  def step(z, opt):
    grad = jax.grad(loss_fn)(z)
    updates, opt = tx.update(grad, opt, z)
    return optax.apply_updates(z, updates), opt

  for _ in range(steps):
    z, opt = step(z, opt)
  return np.asarray(jnp.tanh(z))
