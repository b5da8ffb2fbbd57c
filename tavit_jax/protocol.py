"""The split-learning primitives of SPEC §2, one client at a time, as pure functions.

These are what a networked deployment sends between machines: only f_H, f_B and their
gradients cross; the cache (skips, time vector), the data and the targets stay on the
client. Backward functions recompute their forward pass instead of holding closures, so
every primitive is a stateless function of arrays. The fused training steps
(`tavit_jax.training.steps`) compute the same thing in one program; a test pins that.
"""

import jax
import jax.numpy as jnp
import optax

from tavit_jax.models import Model


def mse(output, target):
  """The training loss: mean squared error in [-1, 1]."""
  return jnp.mean(jnp.square(output - target))


def client_forward(model: Model, head, x, timesteps):
  """Step 1, client: returns (f_H to send, cache to keep)."""
  return model.head_apply(head, x, timesteps)


def server_forward(model: Model, body, f_h, dropout_rng=None):
  """Step 2, server: returns f_B to send back."""
  return model.body_apply(body, f_h, dropout_rng)


def client_backward(model: Model, tail, cache, f_b, target):
  """Step 3, client: loss, tail gradient, ∂L/∂f_B (to send) and ∂L/∂cache (to keep)."""
  def loss_fn(tail, f_b, cache):
    return mse(model.tail_apply(tail, f_b, cache), target)

  loss, (tail_grad, f_b_grad, cache_grad) = jax.value_and_grad(loss_fn, argnums=(0, 1, 2))(
      tail, f_b, cache)
  return loss, tail_grad, f_b_grad, cache_grad


def server_backward(model: Model, body, f_h, f_b_grad, dropout_rng=None):
  """Step 4, server: (∂L/∂body, ∂L/∂f_H); the same dropout_rng as the forward."""
  _, vjp = jax.vjp(lambda body, f_h: server_forward(model, body, f_h, dropout_rng), body, f_h)
  return vjp(f_b_grad)


def client_update(model: Model, tx: optax.GradientTransformation, head, tail, opt_state,
                  x, timesteps, f_h_grad, cache_grad, tail_grad):
  """Step 5, client phase: head gradient through f_H, skips and time path, one optimizer step."""
  _, vjp = jax.vjp(lambda head: client_forward(model, head, x, timesteps), head)
  (head_grad,) = vjp((f_h_grad, cache_grad))
  params = {"head": head, "tail": tail}
  updates, opt_state = tx.update({"head": head_grad, "tail": tail_grad}, opt_state, params)
  params = optax.apply_updates(params, updates)
  return params["head"], params["tail"], opt_state


def server_update(tx: optax.GradientTransformation, body, opt_state, body_grads):
  """Step 4, server phase: one body step on the mean of the clients' gradients."""
  mean_grad = jax.tree_util.tree_map(lambda *g: sum(g) / len(g), *body_grads)
  updates, opt_state = tx.update(mean_grad, opt_state, body)
  return optax.apply_updates(body, updates), opt_state
