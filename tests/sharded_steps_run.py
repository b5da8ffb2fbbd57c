"""Runs a few vmapped steps of every kind on however many CPU devices XLA was given and
saves the final state (test_sharding.py compares 8 devices with 1)."""

import sys

import jax
import numpy as np

from test_steps import batch, make

TASKS = ["deblocking", "denoising", "deraining", "deblurring"] * 2


def main(out_path: str) -> None:
  _, _, _, state, steps = make("vmap", dropout=0.1, tasks=TASKS, sgd=True)
  sharding = jax.tree_util.tree_leaves(state["clients"])[0].sharding
  assert sharding.num_devices == jax.device_count(), sharding
  for i in range(2):
    state, _ = steps.client(state, batch(i, len(TASKS)), np.ones(len(TASKS), bool))
  state = steps.unify(state)
  for i in range(2):
    state, _ = steps.server(state, batch(10 + i, len(TASKS)))
  state, _ = steps.joint(state, batch(20, len(TASKS)))
  leaves = jax.tree_util.tree_leaves_with_path(state)
  np.savez(out_path, devices=jax.device_count(),
           **{jax.tree_util.keystr(p): np.asarray(v) for p, v in leaves})


if __name__ == "__main__":
  main(sys.argv[1])
