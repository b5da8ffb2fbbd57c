"""One compiled per-client program called for each client in turn (the CPU choice).

On XLA:CPU a vmapped convolution over per-client weights becomes a grouped convolution
that runs 2.1× slower than this loop (tiny model, 8 clients × 4 patches: 3.03 s vs 1.41 s).
One program per kind of step; the client index k is a traced argument, so K clients
compile once.
"""

from typing import Callable

import jax
import jax.numpy as jnp

from tavit_jax.training.step_parts import client_slice, Parts


def make_loop_steps(parts: Parts) -> tuple[Callable, Callable, Callable]:
  """(client, server, joint) steps of `Steps`; the state stays where it is. `joint` takes
  an optional `active` mask: the simultaneous protocol's client step."""
  num_clients, tree_map = parts.num_clients, jax.tree_util.tree_map
  task_ids = jnp.asarray(parts.task_ids)

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
    head, tail, opt, loss = parts.client_one(*client_inputs(state, batch, keys, k), active[k],
                                             task_ids[k])
    return with_client(state, k, head, tail, opt), {"loss": loss}

  def body_grad_k(state, batch, keys, k, grad_sum):
    head, tail, _, body, x, y, client_keys = client_inputs(state, batch, keys, k)
    grad, loss = parts.body_grad_one(head, tail, body, x, y, client_keys, task_ids[k])
    return tree_map(jnp.add, grad_sum, grad), loss

  def joint_k(state, batch, keys, k, grad_sum, active):
    head, tail, opt, grad, loss = parts.joint_one(*client_inputs(state, batch, keys, k),
                                                  task_ids[k], active[k])
    return with_client(state, k, head, tail, opt), tree_map(jnp.add, grad_sum, grad), loss

  begin_jit = jax.jit(parts.begin, donate_argnums=0)
  client_k_jit = jax.jit(client_k, donate_argnums=0)
  body_grad_k_jit = jax.jit(body_grad_k, donate_argnums=4)
  joint_k_jit = jax.jit(joint_k, donate_argnums=(0, 4))
  server_update_jit = jax.jit(parts.server_update, donate_argnums=0)
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

  def joint_step(state, batch, active=None):
    """Every (or every `active`) client's head and tail and the body step together."""
    state, keys = begin_jit(state)
    active = jnp.ones(num_clients, bool) if active is None else active
    batch, active = jax.device_put((batch, active))
    grad_sum, losses = zeros_like_body(state), []
    for k in range(num_clients):
      state, grad_sum, loss = joint_k_jit(state, batch, keys, k, grad_sum, active)
      losses.append(loss)
    return server_update_jit(state, grad_sum), stack(losses)

  return client_step, server_step, joint_step
