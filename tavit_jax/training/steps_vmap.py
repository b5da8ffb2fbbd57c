"""All clients of a step as one program over the stacked client axis (accelerators).

The mesh has one axis, 'clients', over all local devices: client state and batches are
split along it when the number of clients divides evenly, the body is replicated, and the
compiler inserts the reduction of the body gradient (the modern form of pmap).
"""

from typing import Callable

import jax
from jax.sharding import NamedSharding, PartitionSpec as P

from tavit_jax.training.step_parts import client_spec, Parts


def make_vmap_steps(parts: Parts, shardings) -> tuple[Callable, Callable, Callable]:
  """(client, server, joint) steps of `Steps`, jitted with the state's `shardings`; `joint`
  takes an optional `active` mask (the simultaneous protocol's client step)."""
  num_clients, tree_map = parts.num_clients, jax.tree_util.tree_map
  mesh = jax.tree_util.tree_leaves(shardings)[0].mesh
  batch_sharding = NamedSharding(mesh, client_spec(num_clients, mesh))
  metrics_sharding = {"loss": NamedSharding(mesh, P())}
  task_ids = jax.numpy.asarray(parts.task_ids)

  def over_clients(fn, in_axes):
    """vmap over the client axis; split over devices with shard_map when the axis is.

    Explicit per-device programs: XLA's automatic partitioner mis-splits the grouped
    convolutions that vmap makes of per-client weights ("feature dimension not divisible
    by feature_group_count"), so each device runs its own clients and the compiler only
    reduces what leaves the shard_map.
    """
    mapped = jax.vmap(fn, in_axes=in_axes)
    if client_spec(num_clients, mesh) == P():
      return mapped
    in_specs = tuple(P("clients") if axis == 0 else P() for axis in in_axes)
    # check_vma=False: a body gradient taken inside stays per device (with it, JAX would
    # psum the gradient of the replicated body already, and the sum below would repeat it).
    return jax.shard_map(mapped, mesh=mesh, in_specs=in_specs, out_specs=P("clients"),
                         check_vma=False)

  def client_step(state, batch, active):
    state, keys = parts.begin(state)
    c = state["clients"]
    head, tail, opt, losses = over_clients(parts.client_one, (0, 0, 0, None, 0, 0, 0, 0, 0))(
        c["head"], c["tail"], c["opt"], state["server"]["body"], batch["input"],
        batch["target"], keys, active, task_ids)
    return dict(state, clients={"head": head, "tail": tail, "opt": opt}), {"loss": losses}

  def server_step(state, batch):
    state, keys = parts.begin(state)
    c = state["clients"]
    grads, losses = over_clients(parts.body_grad_one, (0, 0, None, 0, 0, 0, 0))(
        c["head"], c["tail"], state["server"]["body"], batch["input"], batch["target"], keys,
        task_ids)
    return parts.server_update(state, tree_map(lambda g: g.sum(0), grads)), {"loss": losses}

  def joint_step(state, batch, active):
    state, keys = parts.begin(state)
    c = state["clients"]
    head, tail, opt, grads, losses = over_clients(parts.joint_one,
                                                  (0, 0, 0, None, 0, 0, 0, 0, 0))(
        c["head"], c["tail"], c["opt"], state["server"]["body"], batch["input"],
        batch["target"], keys, task_ids, active)
    state = dict(state, clients={"head": head, "tail": tail, "opt": opt})
    return parts.server_update(state, tree_map(lambda g: g.sum(0), grads)), {"loss": losses}

  jit_state = lambda f, *extra: jax.jit(
      f, in_shardings=(shardings, *extra), out_shardings=(shardings, metrics_sharding),
      donate_argnums=0)
  every_client = lambda state, batch: joint_step(state, batch, jax.numpy.ones(num_clients, bool))
  joint_all = jit_state(every_client, batch_sharding)
  joint_some = jit_state(joint_step, batch_sharding, batch_sharding)
  joint = lambda state, batch, active=None: (joint_all(state, batch) if active is None
                                             else joint_some(state, batch, active))
  return (jit_state(client_step, batch_sharding, batch_sharding),
          jit_state(server_step, batch_sharding), joint)
