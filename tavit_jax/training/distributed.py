"""Training across processes with `jax.distributed`: clients split over the processes and
their devices, the body replicated, the same results as one process with all the devices.

Every process runs the same `tavit-train` command (multi-controller SPMD). The mesh spans
all processes' devices; client k lives on one device, so a process holds and loads the
data of its own clients only, and the server's reduction of the body gradient is an XLA
collective across processes (gloo on CPU, NCCL on GPU, ICI on TPU). The first process
writes results, pictures and TensorBoard; every process writes its part of a checkpoint.
"""

import json
from typing import Optional

import jax
import numpy as np
from jax.experimental import multihost_utils

from tavit_jax.errors import TavitError


def initialize(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None) -> None:
  """Joins the run. Without arguments JAX finds its peers itself on SLURM, TPU pod slices
  and other clusters it knows; elsewhere give all three (the same address everywhere)."""
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives across processes.
  jax.distributed.initialize(coordinator_address, num_processes, process_id)


def is_multiprocess() -> bool:
  return jax.process_count() > 1


def is_primary() -> bool:
  """The process that writes what there is one of (results, pictures, TensorBoard)."""
  return jax.process_index() == 0


def check_clients_fit(num_clients: int, client_map: str) -> None:
  """Across processes every client must live on exactly one device."""
  if not is_multiprocess():
    return
  if client_map != "vmap":
    raise TavitError("training across processes needs train.client_map='vmap' (or 'auto'), "
                     f"not {client_map!r}: the loop runs every client in every process")
  if num_clients % jax.device_count():
    raise TavitError(f"{num_clients} clients cannot be split evenly over {jax.device_count()} "
                     f"devices in {jax.process_count()} processes; use a multiple of the devices")


def local_clients(batch_sharding, num_clients: int) -> list[int]:
  """Indices of the clients whose data this process feeds (all of them in one process)."""
  if not is_multiprocess():
    return list(range(num_clients))
  indices = batch_sharding.addressable_devices_indices_map((num_clients,)).values()
  return sorted({k for index in indices for k in range(num_clients)[index[0]]})


def to_global(local_tree, sharding, num_clients: int):
  """This process's clients' arrays (leading axis: its clients) as global arrays."""
  if not is_multiprocess():
    return local_tree
  return jax.tree_util.tree_map(
      lambda a: jax.make_array_from_process_local_data(sharding, a, (num_clients, *a.shape[1:])),
      local_tree)


def gather(tree):
  """A global tree as numpy arrays in every process (for evaluation)."""
  if not is_multiprocess():
    return tree
  return jax.tree_util.tree_map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))


def pack_data_states(local_state: dict) -> dict:
  """What a checkpoint keeps of the data iterators: this process's state alone, or every
  process's (gathered, since only the first process writes the checkpoint's JSON)."""
  if not is_multiprocess():
    return local_state
  encoded = np.frombuffer(json.dumps(local_state).encode(), np.uint8)
  sizes = np.asarray(multihost_utils.process_allgather(np.array([encoded.size]))).reshape(-1)
  padded = np.zeros(int(sizes.max()), np.uint8)
  padded[:encoded.size] = encoded
  everyone = np.asarray(multihost_utils.process_allgather(padded))
  return {f"process_{p}": json.loads(bytes(everyone[p, :sizes[p]])) for p in range(len(sizes))}


def unpack_data_state(saved: dict) -> dict:
  """This process's data iterator state from what `pack_data_states` kept."""
  if not is_multiprocess():
    return saved
  key = f"process_{jax.process_index()}"
  if key not in saved:
    raise TavitError(f"the checkpoint holds no data position for {key}: it was written by a "
                     "run with another number of processes; resume with the same launch")
  return saved[key]
