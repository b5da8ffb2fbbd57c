"""Alternating TAViT with CutMixSL's mixed tokens (`train.token_mix=cutmix`, mixing.py).

The server sees one grid per group of `train.mix_clients` clients, pasted from each one's
share of the token positions (docs/design.md §4.3). A group's clients share the body's input
grid, so they cannot step one at a time as in steps_loop.py: one compiled program steps one
group (its index traced, so all groups compile once), called for each group in turn.
"""

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tavit_jax import protocol
from tavit_jax.models import Model
from tavit_jax.protocol import apply_client_grads
from tavit_jax.training import mixing
from tavit_jax.training.protocols.base import Protocol
from tavit_jax.training.step_parts import client_slice, Parts


class CutMix(Protocol):
  name = "alternating with train.token_mix=cutmix"
  over_flower = False

  def check(self, config):
    train = config.train
    mixing.check(train.token_mix, train.mix_clients, train.mix_pairing, train.token_keep)
    mixing.groups(list(config.clients), train.mix_clients, train.mix_pairing)

  def make_steps(self, model, config, client_tx, server_tx, ids, shardings, phases, options):
    steps = super().make_steps(model, config, client_tx, server_tx, ids, shardings, phases,
                               options)
    train = config.train
    groups = mixing.groups(list(config.clients), train.mix_clients, train.mix_pairing)
    client, server = make_mixed_steps(model, client_tx, steps.parts, groups, options.dropout,
                                      protocol.sender(options.wire_dtype))
    return dataclasses.replace(steps, client=client, server=server)

  def _mixed_clients(self, config):
    return config.train.mix_clients


def make_mixed_steps(model: Model, client_tx: optax.GradientTransformation, parts: Parts,
                     groups: np.ndarray, dropout: bool,
                     send: Callable) -> tuple[Callable, Callable]:
  """(client, server) steps of `Steps` for the fixed mixing `groups` (G, K)."""
  tree_map = jax.tree_util.tree_map
  group_members = jnp.asarray(groups)
  mix_clients = groups.shape[1]
  order = np.argsort(groups.reshape(-1))  # Per-client losses back in client order.
  side = model.token_shape[0]
  num_tokens = side * side

  def group_loss(heads, tails, body, xs, ys, keys):
    """Summed loss of the group's clients, and each one's (over its own pixels)."""
    batch = xs.shape[1]
    owned = mixing.masks(keys[0, 0], batch, num_tokens, mix_clients)  # (K, B, N)
    grid_masks = owned.reshape(mix_clients, batch, side, side, 1)
    f_hs, caches = [], []
    for j in range(mix_clients):
      f_h, cache = model.head_apply(client_slice(heads, j), xs[j],
                                    model.timesteps(keys[j, 0], batch),
                                    protocol.noise_key(keys[j, 0]))
      f_hs.append(f_h)
      caches.append(cache)
    pasted = mixing.paste([send(f_h) for f_h in f_hs], grid_masks)
    f_b = send(model.body_apply(body, pasted, keys[0, 1] if dropout else None))
    losses = []
    for j in range(mix_clients):
      own_grid = jnp.where(grid_masks[j], f_b, f_hs[j])  # Its positions of f_B, else its f_H.
      out = model.tail_apply(client_slice(tails, j), own_grid, caches[j])
      pixels = mixing.pixel_mask(owned[j], (side, side), model.patch_size)
      losses.append(mixing.masked_mse(out, ys[j], pixels))
    losses = jnp.stack(losses)
    return losses.sum(), losses

  def group_inputs(state, batch, keys, g):
    members, c = group_members[g], state["clients"]
    take = lambda tree: tree_map(lambda a: a[members], tree)
    return (members, take(c["head"]), take(c["tail"]), take(c["opt"]),
            batch["input"][members], batch["target"][members], keys[members])

  def client_group(state, batch, keys, g, active):
    members, heads, tails, opts, xs, ys, group_keys = group_inputs(state, batch, keys, g)
    (_, losses), (head_grads, tail_grads) = jax.value_and_grad(
        group_loss, argnums=(0, 1), has_aux=True)(heads, tails, state["server"]["body"], xs, ys,
                                                   group_keys)
    new = jax.vmap(lambda *a: apply_client_grads(client_tx, *a))(heads, tails, opts, head_grads,
                                                                   tail_grads)
    live = active[members]
    new = tree_map(lambda n, o: jnp.where(live.reshape((-1,) + (1,) * (n.ndim - 1)), n, o),
                   new, (heads, tails, opts))
    put = lambda tree, part: tree_map(lambda a, b: a.at[members].set(b), tree, part)
    c = state["clients"]
    clients = {"head": put(c["head"], new[0]), "tail": put(c["tail"], new[1]),
               "opt": put(c["opt"], new[2])}
    return dict(state, clients=clients), losses

  def body_grad_group(state, batch, keys, g, grad_sum):
    _, heads, tails, _, xs, ys, group_keys = group_inputs(state, batch, keys, g)
    (_, losses), grad = jax.value_and_grad(group_loss, argnums=2, has_aux=True)(
        heads, tails, state["server"]["body"], xs, ys, group_keys)
    return tree_map(jnp.add, grad_sum, grad), losses

  begin = jax.jit(parts.begin, donate_argnums=0)
  client_group_jit = jax.jit(client_group, donate_argnums=0)
  body_grad_group_jit = jax.jit(body_grad_group, donate_argnums=4)
  server_update = jax.jit(parts.server_update, donate_argnums=0)
  zeros_like_body = jax.jit(lambda state: tree_map(jnp.zeros_like, state["server"]["body"]))
  in_client_order = lambda losses: {"loss": jnp.concatenate(losses)[order]}

  def client_step(state, batch, active):
    state, keys = begin(state)
    batch, active = jax.device_put((batch, active))
    losses = []
    for g in range(len(groups)):
      state, group_losses = client_group_jit(state, batch, keys, g, active)
      losses.append(group_losses)
    return state, in_client_order(losses)

  def server_step(state, batch):
    state, keys = begin(state)
    batch, grad_sum, losses = jax.device_put(batch), zeros_like_body(state), []
    for g in range(len(groups)):
      grad_sum, group_losses = body_grad_group_jit(state, batch, keys, g, grad_sum)
      losses.append(group_losses)
    return server_update(state, grad_sum), in_client_order(losses)

  return client_step, server_step
