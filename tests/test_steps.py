"""The compiled steps against the split primitives of docs/design.md §2.1, and what each
phase may touch."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from tavit_jax import fedavg, models, protocol, roster
from tavit_jax.training import state as state_lib, steps as steps_lib
from tavit_jax.training.step_parts import StepOptions

TASKS = ["denoising", "deraining", "denoising"]  # Same-task clients not adjacent on purpose.
PATCH, BATCH = 32, 2


def micro_model(dropout=0.0):
  config = models.tiny_config()
  config.update(dim=8, attn_heads=2, attn_head_dim=4, body_layers=1, body_heads=2,
                body_mlp_dim=32, body_dropout=dropout)
  return models.build(config, PATCH)


def make(client_map, dropout=0.0, tasks=TASKS, sgd=False, wire_dtype=None):
  """`sgd`: updates linear in the gradient, to compare gradients through the parameters
  (Adam's first step is ±lr whatever the gradient's size, which hides differences)."""
  model = micro_model(dropout)
  betas = ml_collections.ConfigDict(dict(b1=0.5, b2=0.999, grad_clip=0.0, lr_decay="constant",
                                         lr_hold=0.0))
  client_tx, server_tx = ((optax.sgd(0.1), optax.sgd(0.1)) if sgd else
                          (state_lib.optimizer(1e-2, betas), state_lib.optimizer(1e-2, betas)))
  state = state_lib.init_state(model, tasks, client_tx, server_tx, jax.random.PRNGKey(0))
  shardings = steps_lib.state_shardings(state, steps_lib.make_mesh(), len(tasks), client_map)
  state = jax.device_put(state, shardings)
  steps = steps_lib.make_steps(model, client_tx, server_tx, roster.task_ids(tasks), shardings,
                               StepOptions(client_map, dropout=dropout > 0, wire_dtype=wire_dtype))
  return model, client_tx, server_tx, state, steps


def batch(seed=0, clients=len(TASKS)):
  rng = np.random.default_rng(seed)
  x = rng.uniform(-1, 1, (clients, BATCH, PATCH, PATCH, 3)).astype(np.float32)
  return {"input": x, "target": np.clip(x + 0.1 * rng.normal(size=x.shape), -1, 1).astype(np.float32)}


def copy(tree):
  return jax.tree_util.tree_map(np.array, tree)


def assert_trees(a, b, **tolerance):
  jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, **tolerance), a, b)


def assert_trees_equal(a, b):
  jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


def composed_client_step(model, client_tx, before, data, wire=lambda a: a):
  """Per client (loss, head, tail) after one client step sent message by message, with the
  keys the fused step draws; `wire` is applied to every message in transit."""
  client_forward, server_forward, client_backward, server_backward = (
      jax.jit(functools.partial(f, model)) for f in (protocol.client_forward, protocol.server_forward,
                                                     protocol.client_backward, protocol.server_backward))
  client_update = jax.jit(functools.partial(protocol.client_update, model, client_tx))
  _, step_rng = jax.random.split(before["rng"])
  keys = jax.random.split(step_rng, 2 * len(TASKS)).reshape(len(TASKS), 2, 2)
  body, results = before["server"]["body"], []
  for k in range(len(TASKS)):
    at = lambda tree: jax.tree_util.tree_map(lambda a: a[k], tree)
    head, tail, opt = at(before["clients"]["head"]), at(before["clients"]["tail"]), at(before["clients"]["opt"])
    x, y = data["input"][k], data["target"][k]
    t = model.timesteps(keys[k, 0], BATCH)
    f_h, cache = client_forward(head, x, t)
    f_h = wire(f_h)
    f_b = wire(server_forward(body, f_h, keys[k, 1]))
    loss, tail_grad, f_b_grad, cache_grad = client_backward(tail, cache, f_b, y)
    _, f_h_grad = server_backward(body, f_h, wire(f_b_grad), keys[k, 1])
    head, tail, _ = client_update(head, tail, opt, x, t, wire(f_h_grad), cache_grad, tail_grad)
    results.append((loss, head, tail))
  return results


def assert_client_step(state, metrics, composed):
  for k, (loss, head, tail) in enumerate(composed):
    at = lambda tree: jax.tree_util.tree_map(lambda a: a[k], tree)
    np.testing.assert_allclose(metrics["loss"][k], loss, rtol=1e-5)
    assert_trees(at(state["clients"]["head"]), head, rtol=1e-4, atol=1e-6)
    assert_trees(at(state["clients"]["tail"]), tail, rtol=1e-4, atol=1e-6)


def test_client_step_equals_composed_primitives():
  model, client_tx, _, state, steps = make("vmap", dropout=0.1, sgd=True)
  before, data = copy(state), batch()
  state, metrics = steps.client(state, data, np.ones(len(TASKS), bool))
  assert_client_step(state, metrics, composed_client_step(model, client_tx, before, data))


def test_bfloat16_wire_rounds_exactly_the_four_messages():
  """f_H, f_B, ∂L/∂f_B and ∂L/∂f_H travel in bfloat16; nothing else is rounded."""
  model, client_tx, _, state, steps = make("loop", dropout=0.1, sgd=True, wire_dtype=jnp.bfloat16)
  before, data = copy(state), batch()
  state, metrics = steps.client(state, data, np.ones(len(TASKS), bool))
  in_bf16 = lambda a: a.astype(jnp.bfloat16).astype(a.dtype)
  assert_client_step(state, metrics, composed_client_step(model, client_tx, before, data, in_bf16))
  float32_losses = [loss for loss, _, _ in composed_client_step(model, client_tx, before, data)]
  assert not np.allclose(metrics["loss"], float32_losses, rtol=1e-6, atol=0)


def test_server_step_equals_mean_of_clients_gradients():
  model, _, server_tx, state, steps = make("vmap", sgd=True)
  before, data = copy(state), batch(1)
  state, _ = steps.server(state, data)
  body, grads = before["server"]["body"], []
  client_forward, server_forward, client_backward, server_backward = (
      jax.jit(functools.partial(f, model)) for f in (protocol.client_forward, protocol.server_forward,
                                                     protocol.client_backward, protocol.server_backward))
  for k in range(len(TASKS)):
    at = lambda tree: jax.tree_util.tree_map(lambda a: a[k], tree)
    x, y = data["input"][k], data["target"][k]
    t = model.timesteps(None, BATCH)
    f_h, cache = client_forward(at(before["clients"]["head"]), x, t)
    f_b = server_forward(body, f_h)
    _, _, f_b_grad, _ = client_backward(at(before["clients"]["tail"]), cache, f_b, y)
    grads.append(server_backward(body, f_h, f_b_grad)[0])
  new_body, _ = protocol.server_update(server_tx, body, before["server"]["opt"], grads)
  assert_trees(state["server"]["body"], new_body, rtol=1e-4, atol=1e-6)


@pytest.mark.slow  # Over 30 s on 2 cores; CI runs it.
@pytest.mark.parametrize("kind", ["client", "server", "joint"])
def test_loop_and_vmap_give_the_same_step(kind):
  results = []
  for client_map in ("vmap", "loop"):
    _, _, _, state, steps = make(client_map, dropout=0.1, sgd=True)
    args = (batch(2), np.array([True, False, True])) if kind == "client" else (batch(2),)
    for _ in range(2):
      state, metrics = getattr(steps, kind)(state, *args)
    results.append((copy(state), np.asarray(metrics["loss"])))
  assert_trees(results[0], results[1], rtol=1e-4, atol=1e-6)


def test_client_phase_leaves_the_body_and_inactive_clients_untouched():
  _, _, _, state, steps = make("loop")
  before = copy(state)
  state, _ = steps.client(state, batch(), np.array([True, False, True]))
  assert_trees_equal(state["server"], before["server"])
  at = lambda tree, k: jax.tree_util.tree_map(lambda a: a[k], tree)
  assert_trees_equal(at(state["clients"], 1), at(before["clients"], 1))
  changed = jax.tree_util.tree_leaves(jax.tree_util.tree_map(
      lambda a, b: not np.array_equal(a[0], b[0]), state["clients"]["head"], before["clients"]["head"]))
  assert any(changed)


def test_server_phase_leaves_heads_tails_and_their_optimizers_untouched():
  _, _, _, state, steps = make("vmap")
  before = copy(state)
  state, _ = steps.server(state, batch())
  assert_trees_equal(state["clients"], before["clients"])
  assert not np.array_equal(state["server"]["body"]["position_embedding"],
                            before["server"]["body"]["position_embedding"])


def test_fedavg_averages_only_within_a_task():
  ids = np.array([0, 1, 0, 2, 1, 1])
  values = np.arange(6, dtype=np.float32)[:, None] * np.ones((6, 3), np.float32)
  averaged = np.asarray(fedavg.same_task_mean(values, ids))[:, 0]
  np.testing.assert_allclose(averaged, [1, 10 / 3, 1, 3, 10 / 3, 10 / 3], rtol=1e-6)  # Task 2 alone: kept.


def test_unify_step_averages_same_task_heads_and_keeps_optimizer_moments():
  _, _, _, state, steps = make("vmap")
  state, _ = steps.client(state, batch(), np.ones(3, bool))
  before = copy(state)
  state = steps.unify(state)
  for part in ("head", "tail"):
    for new, old in zip(jax.tree_util.tree_leaves(state["clients"][part]),
                        jax.tree_util.tree_leaves(before["clients"][part])):
      np.testing.assert_allclose(new[0], (old[0] + old[2]) / 2, rtol=1e-6, atol=1e-7)
      np.testing.assert_array_equal(new[0], new[2])
      np.testing.assert_array_equal(new[1], old[1])  # deraining: the only client of its task.
  assert_trees_equal(state["clients"]["opt"], before["clients"]["opt"])
