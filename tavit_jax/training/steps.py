"""The jit-compiled, sharded step functions: client phase, server phase, joint, evaluation.

Two ways to run the clients of a step, with the same results (a test pins it):
- 'vmap': all clients as one program over the stacked client axis. The mesh has one axis,
  'clients', over all local devices: client state and batches are split along it when the
  number of clients divides evenly, the body is replicated, and the compiler inserts the
  reduction of the body gradient (the modern form of pmap; SPEC §6).
- 'loop': one compiled per-client program called for each client in turn. On XLA:CPU a
  vmapped convolution over per-client weights becomes a grouped convolution that runs
  2.1× slower than this loop (tiny model, 8 clients × 4 patches: 3.03 s vs 1.41 s).
'auto' picks 'loop' on CPU and 'vmap' on accelerators.
"""

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from tavit_jax.communication import over_wire
from tavit_jax.errors import TavitError
from tavit_jax.models import Model
from tavit_jax.protocol import mse
from tavit_jax.training.state import fedavg_same_task

CLIENT_MAPS = ("auto", "vmap", "loop")


def resolve_client_map(client_map: str) -> str:
  if client_map not in CLIENT_MAPS:
    raise TavitError(f"train.client_map must be one of {CLIENT_MAPS}, not {client_map!r}")
  if client_map == "auto":
    return "loop" if jax.default_backend() == "cpu" else "vmap"
  return client_map


def client_slice(tree, k):
  """Client k's part of a tree stacked on the client axis."""
  return jax.tree_util.tree_map(lambda a: a[k], tree)


def make_mesh() -> jax.sharding.Mesh:
  # Auto axes: the compiler propagates the client split through vmap and inserts collectives.
  return jax.make_mesh((jax.device_count(),), ("clients",),
                       axis_types=(jax.sharding.AxisType.Auto,))


def client_spec(num_clients: int, mesh, client_map: str = "vmap") -> P:
  """Split the client axis over devices when vmapped and it divides evenly, else replicate."""
  return P("clients") if client_map == "vmap" and num_clients % mesh.size == 0 else P()


def state_shardings(state, mesh, num_clients: int, client_map: str = "vmap"):
  clients = NamedSharding(mesh, client_spec(num_clients, mesh, client_map))
  replicated = NamedSharding(mesh, P())
  return {key: jax.tree_util.tree_map(lambda _: clients if key == "clients" else replicated, value)
          for key, value in state.items()}


@dataclasses.dataclass
class Steps:
  """Compiled steps. Each takes and returns the whole state (donated) plus metrics."""

  client: Callable  # (state, batch, active) -> (state, {'loss': (K,)}); heads/tails step
  server: Callable  # (state, batch) -> (state, {'loss': (K,)}); the body steps
  joint: Callable  # (state, batch) -> (state, {'loss': (K,)}); both step (Base baseline)
  unify: Callable  # state -> state with same-task heads/tails averaged
  restore: Callable  # (head, tail, body, patches) -> patches, for one client


def make_steps(model: Model, client_tx: optax.GradientTransformation,
               server_tx: optax.GradientTransformation, ids: np.ndarray, shardings,
               client_map: str = "vmap", dropout: bool = True, wire_dtype=None) -> Steps:
  """Steps for clients with static task ids `ids`, state `shardings`, a resolved client_map.

  `wire_dtype` (e.g. bfloat16): features and gradients are rounded to it where they would
  cross the network, as a deployment sending them in that dtype computes.
  """
  num_clients = len(ids)
  mesh = jax.tree_util.tree_leaves(shardings)[0].mesh
  batch_sharding = NamedSharding(mesh, client_spec(num_clients, mesh, client_map))
  metrics_sharding = {"loss": NamedSharding(mesh, P())}
  tree_map = jax.tree_util.tree_map

  send = (lambda a: a) if wire_dtype is None else (lambda a: over_wire(a, wire_dtype))

  # Per client, pure: these are what both client maps run.
  def loss_fn(head, tail, body, x, y, keys):
    timesteps = model.timesteps(keys[0], x.shape[0])
    dropout_rng = keys[1] if dropout else None
    f_h, cache = model.head_apply(head, x, timesteps)
    f_b = model.body_apply(body, send(f_h), dropout_rng)
    return mse(model.tail_apply(tail, send(f_b), cache), y)

  def client_update(head, tail, opt, grads, active=True):
    params = {"head": head, "tail": tail}
    updates, new_opt = client_tx.update({"head": grads[0], "tail": grads[1]}, opt, params)
    new = optax.apply_updates(params, updates)
    new, new_opt = tree_map(lambda n, o: jnp.where(active, n, o), (new, new_opt), (params, opt))
    return new["head"], new["tail"], new_opt

  def client_one(head, tail, opt, body, x, y, keys, active):
    loss, grads = jax.value_and_grad(loss_fn, argnums=(0, 1))(head, tail, body, x, y, keys)
    return (*client_update(head, tail, opt, grads, active), loss)

  def body_grad_one(head, tail, body, x, y, keys):
    loss, grad = jax.value_and_grad(loss_fn, argnums=2)(head, tail, body, x, y, keys)
    return grad, loss

  def joint_one(head, tail, opt, body, x, y, keys):
    loss, grads = jax.value_and_grad(loss_fn, argnums=(0, 1, 2))(head, tail, body, x, y, keys)
    return (*client_update(head, tail, opt, grads[:2]), grads[2], loss)

  def server_update(state, body_grad_sum):
    """The body steps on the mean of the clients' gradients: every client weighs the same."""
    server = state["server"]
    grad = tree_map(lambda g: g / num_clients, body_grad_sum)
    updates, opt = server_tx.update(grad, server["opt"], server["body"])
    return dict(state, server={"body": optax.apply_updates(server["body"], updates), "opt": opt})

  def begin(state):
    """Advances step and RNG; per client a (timestep key, dropout key) pair."""
    rng, step_rng = jax.random.split(state["rng"])
    keys = jax.random.split(step_rng, 2 * num_clients).reshape(num_clients, 2, *rng.shape)
    return dict(state, step=state["step"] + 1, rng=rng), keys

  def unify(state):
    """FedAvg of heads and tails among same-task clients; optimizer moments stay local."""
    c = state["clients"]
    head, tail = fedavg_same_task((c["head"], c["tail"]), ids)
    return dict(state, clients=dict(c, head=head, tail=tail))

  def restore(head, tail, body, patches):
    timesteps = model.timesteps(jax.random.key(0), patches.shape[0])
    return model.apply({"head": head, "body": body, "tail": tail}, patches, timesteps)

  jit_state = lambda f, *extra: jax.jit(
      f, in_shardings=(shardings, *extra), out_shardings=(shardings, metrics_sharding),
      donate_argnums=0)
  common = dict(unify=jax.jit(unify, in_shardings=(shardings,), out_shardings=shardings,
                              donate_argnums=0), restore=jax.jit(restore))

  def over_clients(fn, in_axes):
    """vmap over the client axis; split over devices with shard_map when the axis is.

    Explicit per-device programs: XLA's automatic partitioner mis-splits the grouped
    convolutions that vmap makes of per-client weights ("feature dimension not divisible
    by feature_group_count"), so each device runs its own clients and the compiler only
    reduces what leaves the shard_map.
    """
    mapped = jax.vmap(fn, in_axes=in_axes)
    if client_spec(num_clients, mesh, client_map) == P():
      return mapped
    in_specs = tuple(P("clients") if axis == 0 else P() for axis in in_axes)
    # check_vma=False: a body gradient taken inside stays per device (with it, JAX would
    # psum the gradient of the replicated body already, and the sum below would repeat it).
    return jax.shard_map(mapped, mesh=mesh, in_specs=in_specs, out_specs=P("clients"),
                         check_vma=False)

  if client_map == "vmap":
    def client_step(state, batch, active):
      state, keys = begin(state)
      c = state["clients"]
      head, tail, opt, losses = over_clients(client_one, (0, 0, 0, None, 0, 0, 0, 0))(
          c["head"], c["tail"], c["opt"], state["server"]["body"], batch["input"],
          batch["target"], keys, active)
      return dict(state, clients={"head": head, "tail": tail, "opt": opt}), {"loss": losses}

    def server_step(state, batch):
      state, keys = begin(state)
      c = state["clients"]
      grads, losses = over_clients(body_grad_one, (0, 0, None, 0, 0, 0))(
          c["head"], c["tail"], state["server"]["body"], batch["input"], batch["target"], keys)
      return server_update(state, tree_map(lambda g: g.sum(0), grads)), {"loss": losses}

    def joint_step(state, batch):
      state, keys = begin(state)
      c = state["clients"]
      head, tail, opt, grads, losses = over_clients(joint_one, (0, 0, 0, None, 0, 0, 0))(
          c["head"], c["tail"], c["opt"], state["server"]["body"], batch["input"],
          batch["target"], keys)
      state = dict(state, clients={"head": head, "tail": tail, "opt": opt})
      return server_update(state, tree_map(lambda g: g.sum(0), grads)), {"loss": losses}

    return Steps(client=jit_state(client_step, batch_sharding, batch_sharding),
                 server=jit_state(server_step, batch_sharding),
                 joint=jit_state(joint_step, batch_sharding), **common)

  # 'loop': one compiled program per kind of step and client index k (a traced argument).
  def client_inputs(state, batch, keys, k):
    """Client k's head, tail, optimizer state, the body, its batch and keys."""
    c = state["clients"]
    return (client_slice(c["head"], k), client_slice(c["tail"], k), client_slice(c["opt"], k),
            state["server"]["body"], batch["input"][k], batch["target"][k], keys[k])

  def with_client(state, k, head, tail, opt):
    c = state["clients"]
    put = lambda tree, new: tree_map(lambda a, b: a.at[k].set(b), tree, new)
    return dict(state, clients={"head": put(c["head"], head), "tail": put(c["tail"], tail),
                                "opt": put(c["opt"], opt)})

  def client_k(state, batch, keys, k, active):
    head, tail, opt, loss = client_one(*client_inputs(state, batch, keys, k), active[k])
    return with_client(state, k, head, tail, opt), {"loss": loss}

  def body_grad_k(state, batch, keys, k, grad_sum):
    head, tail, _, body, x, y, client_keys = client_inputs(state, batch, keys, k)
    grad, loss = body_grad_one(head, tail, body, x, y, client_keys)
    return tree_map(jnp.add, grad_sum, grad), loss

  def joint_k(state, batch, keys, k, grad_sum):
    head, tail, opt, grad, loss = joint_one(*client_inputs(state, batch, keys, k))
    return with_client(state, k, head, tail, opt), tree_map(jnp.add, grad_sum, grad), loss

  begin_jit = jax.jit(begin, donate_argnums=0)
  client_k_jit = jax.jit(client_k, donate_argnums=0)
  body_grad_k_jit = jax.jit(body_grad_k, donate_argnums=4)
  joint_k_jit = jax.jit(joint_k, donate_argnums=(0, 4))
  server_update_jit = jax.jit(server_update, donate_argnums=0)
  zeros_like_body = jax.jit(lambda state: tree_map(jnp.zeros_like, state["server"]["body"]))
  stack = lambda losses: {"loss": jnp.stack(losses)}

  def client_step(state, batch, active):
    state, keys = begin_jit(state)
    batch, active = jax.device_put((batch, active))
    losses = []
    for k in range(num_clients):
      state, metrics = client_k_jit(state, batch, keys, k, active)
      losses.append(metrics["loss"])
    return state, stack(losses)

  def server_step(state, batch):
    state, keys = begin_jit(state)
    batch, grad_sum, losses = jax.device_put(batch), zeros_like_body(state), []
    for k in range(num_clients):
      grad_sum, loss = body_grad_k_jit(state, batch, keys, k, grad_sum)
      losses.append(loss)
    return server_update_jit(state, grad_sum), stack(losses)

  def joint_step(state, batch):
    state, keys = begin_jit(state)
    batch, grad_sum, losses = jax.device_put(batch), zeros_like_body(state), []
    for k in range(num_clients):
      state, grad_sum, loss = joint_k_jit(state, batch, keys, k, grad_sum)
      losses.append(loss)
    return server_update_jit(state, grad_sum), stack(losses)

  return Steps(client=client_step, server=server_step, joint=joint_step, **common)
