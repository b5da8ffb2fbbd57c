"""What both client maps compile: one client's pure step functions and the whole-state ones.

`make_parts` closes them over the model, the two optimizers and the static client roster;
steps_vmap.py runs the per-client functions over the stacked client axis at once,
steps_loop.py one client after another; steps.py puts either into `Steps`.
"""

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import PartitionSpec as P

from tavit_jax import fedavg, protocol
from tavit_jax.models import Model
from tavit_jax.protocol import apply_client_grads, mse, step_keys


@dataclasses.dataclass
class Steps:
  """Compiled steps. Each takes and returns the whole state (donated) plus metrics."""

  client: Callable  # (state, batch, active) -> (state, {'loss': (K,)}); heads/tails step
  server: Callable  # (state, batch) -> (state, {'loss': (K,)}); the body steps
  # (state, batch, active=None) -> (state, {'loss': (K,)}); heads, tails and the body step
  # together: every client (Base), or the `active` ones (the simultaneous protocol).
  joint: Callable
  unify: Callable  # state -> state with same-task heads/tails averaged
  restore: Callable  # (head, tail, body, patches) -> patches, for one client
  # The single round's own phases (protocols/single_round.py): (state, batch) -> (state, metrics).
  upload: Optional[Callable] = None
  dino: Optional[Callable] = None
  parts: Optional["Parts"] = None  # What they were compiled from, for protocols that regroup.


@dataclasses.dataclass(frozen=True)
class StepOptions:
  """How the steps compute, beyond the model and optimizers: one object for every builder.

  `wire_dtype` (e.g. bfloat16): features and gradients are rounded to it where they would
  cross the network, as a deployment sending them in that dtype computes.
  `permute_tokens`: each client sends its f_H tokens in a fresh random order per sample and
  step and restores the order of f_B before its tail (docs/design.md §4.2); gradients travel
  the same way (autodiff transposes the gathers). `token_keep` < 1: each client sends only
  that fraction of its f_H tokens, fresh per sample and step; the body fills the others
  with its mask token (§4.3). `client_map`: 'vmap' or 'loop' (steps.py), resolved.
  """

  client_map: str = "vmap"
  dropout: bool = True
  wire_dtype: Any = None
  permute_tokens: bool = False
  token_keep: float = 1.0

  @classmethod
  def from_config(cls, config, client_map: str) -> "StepOptions":
    """From a run's config (its checks' one-line refusals included)."""
    return cls(client_map=client_map, dropout=config.model.body_dropout > 0,
               wire_dtype=protocol.wire_dtype(config.train.wire_dtype),
               permute_tokens=protocol.check_permutation(config.train.permute_tokens,
                                                         config.model.pos_emb),
               token_keep=protocol.check_token_keep(config.train.token_keep,
                                                    config.model.mask_token))


def client_slice(tree, k):
  """Client k's part of a tree stacked on the client axis."""
  return jax.tree_util.tree_map(lambda a: a[k], tree)


def client_spec(num_clients: int, mesh, client_map: str = "vmap") -> P:
  """Split the client axis over devices when vmapped and it divides evenly, else replicate."""
  return P("clients") if client_map == "vmap" and num_clients % mesh.size == 0 else P()


@dataclasses.dataclass(frozen=True)
class Parts:
  """Per client (unbatched arrays): `client_one`, `body_grad_one`, `joint_one`.
  On the whole state: `begin`, `server_update`, `unify`; and `restore` for evaluation."""

  num_clients: int
  task_ids: np.ndarray  # (K,) static: each client's task.
  # `task`: the client's task id, which only a body with SCA-MTL's neck reads.
  # (head, tail, opt, body, x, y, keys, active, task) -> (head, tail, opt, loss)
  client_one: Callable
  body_grad_one: Callable  # (head, tail, body, x, y, keys, task) -> (body grad, loss)
  # (head, tail, opt, body, x, y, keys, task, active) -> (head, tail, opt, body grad, loss);
  # an inactive client neither steps nor contributes a gradient.
  joint_one: Callable
  begin: Callable  # state -> (state with step and RNG advanced, per-client keys (K, 2, ...))
  server_update: Callable  # (state, summed body gradient) -> state
  unify: Callable  # state -> state
  restore: Callable  # (head, tail, body, patches, task) -> patches


def make_parts(model: Model, client_tx: optax.GradientTransformation,
               server_tx: optax.GradientTransformation, ids: np.ndarray,
               options: StepOptions = StepOptions()) -> Parts:
  """The per-client and whole-state functions for clients with static task ids `ids`."""
  num_clients = len(ids)
  tree_map = jax.tree_util.tree_map
  send = protocol.sender(options.wire_dtype)
  dropout, permute_tokens, token_keep = options.dropout, options.permute_tokens, options.token_keep

  def loss_fn(head, tail, body, x, y, keys, task):
    timesteps = model.timesteps(keys[0], x.shape[0])
    dropout_rng = keys[1] if dropout else None
    f_h, cache = model.head_apply(head, x, timesteps, protocol.noise_key(keys[0]))
    batch, num_tokens = x.shape[0], f_h.shape[1] * f_h.shape[2]
    keep = (None if token_keep == 1 else
            protocol.keep_masks(keys[0], batch, num_tokens, token_keep))
    if not permute_tokens:
      f_b = send(model.body_apply(body, send(f_h), dropout_rng, keep, task))
    else:  # The kept set is chosen in the client's order, then everything is shuffled.
      order = protocol.token_permutations(protocol.permutation_key(keys[0]), batch, num_tokens)
      keep = None if keep is None else jnp.take_along_axis(keep, order, axis=1)
      f_b_seen = model.body_apply(body, send(protocol.permute_tokens(f_h, order)), dropout_rng,
                                  keep, task)
      f_b = protocol.unpermute_tokens(send(f_b_seen), order)
    return mse(model.tail_apply(tail, f_b, cache), y)

  def client_update(head, tail, opt, grads, active=True):
    """The optimizer step, kept only for clients still `active` in their phase."""
    new = apply_client_grads(client_tx, head, tail, opt, *grads)
    return tree_map(lambda n, o: jnp.where(active, n, o), new, (head, tail, opt))

  def client_one(head, tail, opt, body, x, y, keys, active, task):
    loss, grads = jax.value_and_grad(loss_fn, argnums=(0, 1))(head, tail, body, x, y, keys, task)
    return (*client_update(head, tail, opt, grads, active), loss)

  def body_grad_one(head, tail, body, x, y, keys, task):
    loss, grad = jax.value_and_grad(loss_fn, argnums=2)(head, tail, body, x, y, keys, task)
    return grad, loss

  def joint_one(head, tail, opt, body, x, y, keys, task, active=True):
    loss, grads = jax.value_and_grad(loss_fn, argnums=(0, 1, 2))(head, tail, body, x, y, keys,
                                                                 task)
    body_grad = tree_map(lambda g: jnp.where(active, g, jnp.zeros_like(g)), grads[2])
    return (*client_update(head, tail, opt, grads[:2], active), body_grad, loss)

  def server_update(state, body_grad_sum):
    """The body steps on the mean of the clients' gradients: every client weighs the same."""
    server = state["server"]
    grad = tree_map(lambda g: g / num_clients, body_grad_sum)
    updates, opt = server_tx.update(grad, server["opt"], server["body"])
    return dict(state, server={"body": optax.apply_updates(server["body"], updates), "opt": opt})

  def begin(state):
    rng, keys = step_keys(state["rng"], num_clients)
    return dict(state, step=state["step"] + 1, rng=rng), keys

  def unify(state):
    """FedAvg of heads and tails among same-task clients; optimizer moments stay local."""
    c = state["clients"]
    head, tail = fedavg.same_task_mean((c["head"], c["tail"]), ids)
    return dict(state, clients=dict(c, head=head, tail=tail))

  def restore(head, tail, body, patches, task=0):
    timesteps = model.timesteps(jax.random.key(0), patches.shape[0])
    return model.apply({"head": head, "body": body, "tail": tail}, patches, timesteps, task=task)

  return Parts(num_clients, ids, client_one, body_grad_one, joint_one, begin, server_update, unify,
               restore)
