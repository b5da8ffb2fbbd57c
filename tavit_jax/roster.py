"""The clients of a run, named once: config.clients is a list of tasks, one per client.

Client k is `<task>_<i>` (its i-th client of that task); clients of one task split that
task's training data into disjoint shards and average their heads and tails (FedAvg);
different tasks never share either. Everything that groups clients by task asks here.
"""

import dataclasses
from typing import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class ClientData:
  """One client's data: its task and its shard of the task's training split."""

  name: str
  task: str
  shard_index: int = 0
  num_shards: int = 1


def assign_clients(client_tasks: Sequence[str]) -> list[ClientData]:
  """Clients in order; those sharing a task split its training data into disjoint shards."""
  counts = {t: client_tasks.count(t) for t in client_tasks}
  seen: dict[str, int] = {}
  clients = []
  for task in client_tasks:
    index = seen.get(task, 0)
    seen[task] = index + 1
    clients.append(ClientData(f"{task}_{index}", task, index, counts[task]))
  return clients


def task_ids(client_tasks: Sequence[str]) -> np.ndarray:
  """Per client, the index of its task in order of first appearance (static)."""
  tasks = list(dict.fromkeys(client_tasks))
  return np.array([tasks.index(t) for t in client_tasks], np.int32)


def first_of_each_task(client_tasks: Sequence[str]) -> dict[str, int]:
  """{task: index of its first client}, tasks in order of first appearance."""
  return {task: list(client_tasks).index(task) for task in dict.fromkeys(client_tasks)}


def shares_task(ids: np.ndarray) -> np.ndarray:
  """Per client (by `task_ids`), whether another client has its task: only those take part
  in FedAvg."""
  return np.bincount(ids)[ids] > 1


def task_groups(ids: np.ndarray) -> list[np.ndarray]:
  """The clients of each task present in `ids`, as index arrays in order of task id."""
  return [np.flatnonzero(ids == task) for task in np.unique(ids)]


def group_of(ids: np.ndarray) -> np.ndarray:
  """Per client, the index of its group in `task_groups(ids)`."""
  return np.unique(ids, return_inverse=True)[1].reshape(-1)
