"""FedAvg among same-task clients: the one mean the in-process steps and the Flower server use.

The paper calls it "unifying" (the config key `train.unify_every` keeps that word): every
client's head and tail are replaced by the unweighted mean over the clients of its task;
clients of different tasks never mix, and a client alone in its task keeps its own. Which
clients share a task is `roster`'s answer. Works on jax arrays (inside jit: the fused
steps) and on numpy arrays (the Flower server, which gets each client's parameters as a
message).
"""

import jax
import jax.numpy as jnp
import numpy as np

from tavit_jax import roster


def same_task_mean(tree, ids: np.ndarray):
  """Every leaf (client axis first) with each client's row replaced by its task's mean.

  `ids`: the static task id of each row (roster.task_ids, or the part of it whose clients'
  parameters arrived). Per task, a sum over its clients then one division.
  """
  groups = roster.task_groups(ids)
  row_to_group = roster.group_of(ids)

  def mean(leaf):
    xp = np if isinstance(leaf, np.ndarray) else jnp
    means = [leaf[members].sum(0) / xp.asarray(len(members), leaf.dtype) for members in groups]
    return xp.stack(means)[row_to_group]

  return jax.tree_util.tree_map(mean, tree)


def task_means(weights: dict[int, dict[str, np.ndarray]], ids: np.ndarray) -> dict[int, dict]:
  """{task id: {name: mean}} over the clients present in `weights` ({client: {name: array}}),
  for the tasks that more than one client of the run (`ids`) has: what the Flower server
  sends back to each of their clients."""
  present = [k for k in sorted(weights) if roster.shares_task(ids)[k]]
  if not present:
    return {}
  names = list(weights[present[0]])
  stacked = {name: np.stack([np.asarray(weights[k][name], np.float32) for k in present])
             for name in names}
  averaged = same_task_mean(stacked, ids[present])
  rows = {int(ids[k]): row for row, k in reversed(list(enumerate(present)))}
  return {task: {name: averaged[name][row] for name in names} for task, row in rows.items()}
