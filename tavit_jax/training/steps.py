"""The jit-compiled, sharded step functions: client phase, server phase, joint, evaluation.

Two ways to run the clients of a step, with the same results (a test pins it): 'vmap'
(steps_vmap.py: one program over the stacked client axis, sharded over the devices) and
'loop' (steps_loop.py: one compiled per-client program called for each client in turn).
'auto' picks 'loop' on CPU, where it is 2.1x faster, and 'vmap' on accelerators. Both
compile the same per-client functions (step_parts.py).
"""

import jax
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from tavit_jax.errors import TavitError
from tavit_jax.models import Model
from tavit_jax.training.step_parts import client_spec, make_parts, StepOptions, Steps
from tavit_jax.training.steps_loop import make_loop_steps
from tavit_jax.training.steps_vmap import make_vmap_steps

CLIENT_MAPS = ("auto", "vmap", "loop")


def resolve_client_map(client_map: str) -> str:
  if client_map not in CLIENT_MAPS:
    raise TavitError(f"train.client_map must be one of {CLIENT_MAPS}, not {client_map!r}")
  if client_map == "auto":  # Across processes each client must live on one device: vmap.
    return "loop" if jax.default_backend() == "cpu" and jax.process_count() == 1 else "vmap"
  return client_map


def make_mesh() -> jax.sharding.Mesh:
  # Auto axes: the compiler propagates the client split through vmap and inserts collectives.
  return jax.make_mesh((jax.device_count(),), ("clients",),
                       axis_types=(jax.sharding.AxisType.Auto,))


def state_shardings(state, mesh, num_clients: int, client_map: str = "vmap"):
  clients = NamedSharding(mesh, client_spec(num_clients, mesh, client_map))
  replicated = NamedSharding(mesh, P())
  return {key: jax.tree_util.tree_map(lambda _: clients if key == "clients" else replicated, value)
          for key, value in state.items()}


def make_steps(model: Model, client_tx: optax.GradientTransformation,
               server_tx: optax.GradientTransformation, ids: np.ndarray, shardings,
               options: StepOptions = StepOptions()) -> Steps:
  """Steps for clients with static task ids `ids`, state `shardings` and `options` (whose
  client_map is resolved)."""
  parts = make_parts(model, client_tx, server_tx, ids, options)
  if options.client_map == "vmap":
    client, server, joint = make_vmap_steps(parts, shardings)
  else:
    client, server, joint = make_loop_steps(parts)
  return Steps(client=client, server=server, joint=joint,
               unify=jax.jit(parts.unify, in_shardings=(shardings,), out_shardings=shardings,
                             donate_argnums=0),
               restore=jax.jit(parts.restore), parts=parts)
