"""Bytes that cross the network per client and training step (SPEC §2), from shapes alone.

What the training loop reports and the issue's tables show: f_H up, f_B down, ∂L/∂f_B up,
∂L/∂f_H down (client phase only; in the server phase the server sends nothing back), and
the FedAvg upload and download of head + tail parameters on each unifying step. Features
and their gradients travel in `wire_dtype` (bfloat16 halves them); parameters always
travel as stored (float32).
"""

import jax
import jax.numpy as jnp
import numpy as np

from tavit_jax.models import Model


def _nbytes(tree, dtype=None) -> int:
  leaves = jax.tree_util.tree_leaves(tree)
  return sum(int(np.prod(a.shape)) * np.dtype(dtype or a.dtype).itemsize for a in leaves)


def bytes_per_step(model: Model, patch_size: int, batch_size: int,
                   wire_dtype="float32") -> dict[str, int]:
  """Predicted bytes per client: per message, per phase and direction, and per FedAvg."""
  wire = jnp.dtype(wire_dtype)
  rng = jax.random.key(0)
  x = jax.ShapeDtypeStruct((batch_size, patch_size, patch_size, 3), jnp.float32)
  t = jax.ShapeDtypeStruct((batch_size,), jnp.int32)
  head = jax.eval_shape(model.init_head, rng)
  f_h, _ = jax.eval_shape(model.head_apply, head, x, t)
  message = _nbytes(f_h, wire)  # f_B and both gradients have f_H's shape.
  params = _nbytes(head) + _nbytes(jax.eval_shape(model.init_tail, rng))
  return {
      "features_up": message,  # f_H, client → server.
      "features_down": message,  # f_B, server → client.
      "gradients_up": message,  # ∂L/∂f_B, client → server.
      "gradients_down": message,  # ∂L/∂f_H, server → client, client phase only.
      "client_phase_up": 2 * message,
      "client_phase_down": 2 * message,
      "server_phase_up": 2 * message,
      "server_phase_down": message,
      "fedavg_upload": params,  # Head + tail to the server, per unifying step.
      "fedavg_download": params,  # The task's average back.
  }
