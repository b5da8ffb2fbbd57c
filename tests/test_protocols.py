"""The protocol table: one row per training protocol, chosen in one place, and the
simultaneous protocol (SplitFed-style) it made one module to add."""

import os
import re

import jax
import ml_collections
import numpy as np
import optax
import pytest

from tavit_jax import roster
from tavit_jax.errors import TavitError
from tavit_jax.training import protocols, state as state_lib, steps as steps_lib
from tavit_jax.training.step_parts import StepOptions
from test_steps import assert_trees, batch, copy, micro_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train_config(mode, **overrides):
  return ml_collections.ConfigDict({**dict(
      mode=mode, token_mix="none", cycles=1, client_phase_steps=(3,), server_phase_steps=2,
      unify_every=-1, client_lr=1e-3, server_lr=5e-4, b1=0.5, b2=0.999, grad_clip=0.0,
      lr_decay="constant", lr_hold=0.0), **overrides})


def built(mode, tasks, client_map="loop", sgd=False, **overrides):
  """(state, steps, phases) of `mode`'s protocol for a micro model, with Adam on both sides
  (`sgd`: updates linear in the gradients, which Adam's near-zero ones would amplify)."""
  train = train_config(mode, **overrides)
  config = ml_collections.ConfigDict(dict(train=train, clients=tuple(tasks)))
  chosen = protocols.select(train)
  phases = chosen.phases(train, len(tasks))
  model = micro_model()
  client_tx, server_tx = ((optax.sgd(0.1), optax.sgd(0.05)) if sgd else
                          state_lib.optimizers(train, phases))
  state = state_lib.init_state(model, tasks, client_tx, server_tx, jax.random.PRNGKey(0))
  shardings = steps_lib.state_shardings(state, steps_lib.make_mesh(), len(tasks), client_map)
  steps = chosen.make_steps(model, config, client_tx, server_tx, roster.task_ids(tasks),
                            shardings, phases, StepOptions(client_map, dropout=False))
  return jax.device_put(state, shardings), steps, phases


@pytest.mark.parametrize("client_map", ["loop", pytest.param("vmap", marks=pytest.mark.slow)])
def test_simultaneous_with_one_client_is_end_to_end_training(client_map):
  """One client, no FedAvg: each simultaneous client step is a joint step of head, body and
  tail with the same optimizers (the server's mean over one client is its gradient)."""
  state_e2e, end_to_end, _ = built("end_to_end", ["denoising"], client_map, sgd=True)
  state_sim, simultaneous, phases = built("simultaneous", ["denoising"], client_map, sgd=True)
  assert [p.kind for p in phases] == ["client", "server"]
  for seed in range(3):
    state_e2e, loss_e2e = end_to_end.joint(state_e2e, batch(seed, clients=1))
    state_sim, loss_sim = simultaneous.client(state_sim, batch(seed, clients=1), np.ones(1, bool))
    np.testing.assert_allclose(loss_sim["loss"], loss_e2e["loss"], rtol=1e-5)
  assert_trees(copy(state_sim), copy(state_e2e), rtol=1e-5, atol=1e-6)


def test_simultaneous_steps_the_body_in_client_phases_and_alternating_does_not():
  tasks = ["denoising", "deraining"]
  # SGD: Adam's first step is about lr * sign(gradient), so float noise in a near-zero
  # gradient (it differs between XLA versions) would flip whole updates.
  state_alt, alternating, _ = built("alternating", tasks, sgd=True)
  state_sim, simultaneous, _ = built("simultaneous", tasks, sgd=True)
  body = lambda state: copy(state["server"]["body"])
  before = copy(state_sim)
  # No client active: nothing steps, the body included.
  state_sim, _ = simultaneous.client(state_sim, batch(0, clients=2), np.zeros(2, bool))
  assert_trees(copy(state_sim["clients"]), before["clients"], rtol=0, atol=0)
  assert_trees(body(state_sim), before["server"]["body"], rtol=0, atol=0)
  state_alt, _ = alternating.client(state_alt, batch(0, clients=2), np.zeros(2, bool))
  # Both active (the step key advanced alike in both runs).
  state_alt, _ = alternating.client(state_alt, batch(1, clients=2), np.ones(2, bool))
  state_sim, _ = simultaneous.client(state_sim, batch(1, clients=2), np.ones(2, bool))
  assert_trees(body(state_alt), before["server"]["body"], rtol=0, atol=0)
  moved = jax.tree_util.tree_leaves(jax.tree_util.tree_map(
      lambda a, b: not np.array_equal(a, b), body(state_sim), before["server"]["body"]))
  assert any(moved)
  # Heads and tails step as in alternating TAViT (same keys, same body at the step's start).
  assert_trees(copy(state_sim["clients"]), copy(state_alt["clients"]), rtol=1e-5, atol=1e-6)


def test_the_table_chooses_and_refuses_in_one_line():
  assert type(protocols.select(train_config("simultaneous"))).__name__ == "Simultaneous"
  with pytest.raises(TavitError, match=r"train.mode must be one of \('alternating', "):
    protocols.select(train_config("federated"))
  with pytest.raises(TavitError, match="train.token_mix=cutmix .* needs train.mode=alternating"):
    protocols.select(train_config("end_to_end", token_mix="cutmix"))
  with pytest.raises(TavitError, match="train.token_mix must be one of"):
    protocols.select(train_config("alternating", token_mix="mixup"))


def test_only_the_table_reads_the_mode():
  """`train.mode` is compared with a protocol's name nowhere but in protocols/__init__.py."""
  compared = re.compile(r"""(train\.mode|\bmode)\s*(==|!=|\bin\b|not in)|["'](alternating|"""
                        r"""end_to_end|single_round|simultaneous)["']\s*(==|!=)""")
  table = os.path.join("tavit_jax", "training", "protocols", "__init__.py")
  offenders = []
  for folder, _, names in os.walk(os.path.join(ROOT, "tavit_jax")):
    for name in names:
      path = os.path.join(folder, name)
      if not name.endswith(".py") or path.endswith(table):
        continue
      for number, line in enumerate(open(path, encoding="utf-8"), 1):
        if compared.search(line) and "image.mode" not in line:
          offenders.append(f"{os.path.relpath(path, ROOT)}:{number}: {line.strip()}")
  assert not offenders, "\n".join(offenders)
