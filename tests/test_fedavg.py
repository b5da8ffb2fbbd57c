"""FedAvg, written once (tavit_jax/fedavg.py): the fused steps' jax mean and the Flower
server's numpy mean of whatever arrived are the same function."""

import jax
import numpy as np

from tavit_jax import fedavg

IDS = np.array([0, 1, 0, 2, 1, 1])  # Same-task clients not adjacent; task 2 alone.


def stacked(seed=0):
  rng = np.random.default_rng(seed)
  return {"head": {"w": rng.normal(size=(6, 3, 2)).astype(np.float32)},
          "tail": rng.normal(size=(6, 4)).astype(np.float32)}


def test_numpy_and_jitted_jax_give_the_same_means():
  tree = stacked()
  on_numpy = fedavg.same_task_mean(tree, IDS)
  on_jax = jax.jit(lambda t: fedavg.same_task_mean(t, IDS))(tree)
  # Equal up to the order in which each library sums a task's three clients.
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                         on_numpy, jax.device_get(on_jax))
  np.testing.assert_allclose(on_numpy["tail"][0], tree["tail"][[0, 2]].mean(0), rtol=1e-6)
  np.testing.assert_array_equal(on_numpy["tail"][3], tree["tail"][3])  # Alone: kept.


def test_the_flower_server_averages_the_clients_that_answered_per_task():
  tree = stacked(1)
  per_client = {k: {"w": tree["head"]["w"][k]} for k in (0, 1, 2, 3, 5)}  # Client 4 missing.
  means = fedavg.task_means(per_client, IDS)
  assert set(means) == {0, 1}  # Task 2 has one client: it takes no part.
  np.testing.assert_allclose(means[0]["w"], tree["head"]["w"][[0, 2]].mean(0), rtol=1e-6)
  np.testing.assert_allclose(means[1]["w"], tree["head"]["w"][[1, 5]].mean(0), rtol=1e-6)
  in_process = fedavg.same_task_mean(tree["head"]["w"][[0, 1, 2, 5]], IDS[[0, 1, 2, 5]])
  np.testing.assert_array_equal(means[1]["w"], in_process[1])
