"""Each side's initial state, drawn exactly as `training.state.init_state` draws it.

The server and every client start from one seed without exchanging weights; the
equivalence test pins these against `init_state`. Compiled: eager Flax init dispatches
op by op and took a minute on a busy 2-core machine, the compiled one a few seconds
(and none with a persistent compilation cache).
"""

import functools

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tavit_jax import protocol
from tavit_jax.models import Model
from tavit_jax.roster import task_ids


def _keys(seed: int):
  return protocol.initial_keys(jax.random.PRNGKey(seed))


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def server_init(model: Model, tx: optax.GradientTransformation, seed: int) -> dict:
  """{'body', 'opt', 'rng'}: the server's part of `init_state`."""
  body_rng, _, rng = _keys(seed)
  body = model.init_body(body_rng)
  return {"body": body, "opt": tx.init(body), "rng": rng}


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def client_init(model: Model, client_tasks: Sequence[str], index: int,
                tx: optax.GradientTransformation, seed: int) -> dict:
  """{'head', 'tail', 'opt'} of client `index`: clients of one task start equal."""
  _, clients_rng, _ = _keys(seed)
  task_id = int(task_ids(list(client_tasks))[index])
  head_key, tail_key = protocol.client_init_keys(clients_rng, task_id)
  head, tail = model.init_head(head_key), model.init_tail(tail_key)
  return {"head": head, "tail": tail, "opt": tx.init({"head": head, "tail": tail})}


def feature_dtype(model: Model) -> np.dtype:
  """The dtype of f_H (and f_B and their gradients) in `model`'s computation. They travel
  as float32 and are cast back to this on arrival, as the in-process step has them."""
  x = jax.ShapeDtypeStruct((1, model.patch_size, model.patch_size, 3), jnp.float32)
  t = jax.ShapeDtypeStruct((1,), jnp.int32)
  head = jax.eval_shape(model.init_head, jax.random.PRNGKey(0))
  return np.dtype(jax.eval_shape(model.head_apply, head, x, t)[0].dtype)
