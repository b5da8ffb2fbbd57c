"""Where trained parameters come from: a training workdir (one client, one checkpoint) or a
folder of imported parameters (`param_files`, e.g. the official PyTorch weights).

Both give a `Trained`: the client's {'head','body','tail'} as numpy arrays, the config
that builds its model, and what it is (task, client, step), which export and inference
record and report.
"""

import dataclasses
import json
import os
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from tavit_jax import files, models
from tavit_jax.errors import TavitError
from tavit_jax.roster import assign_clients

CONFIG_FILE = "config.json"
TIMESTEP = 0  # The deterministic timestep of model.time_conditioning='fixed'.


@dataclasses.dataclass(frozen=True)
class Trained:
  """One client's parameters and how to run them."""

  params: dict
  model_config: dict  # A config.model section.
  info: dict  # task, client, step, seed, patch_size, timestep, source.

  def model(self) -> models.Model:
    config = ml_collections.ConfigDict(self.model_config)
    config.dim_mults = tuple(config.dim_mults)
    return models.build(config, self.info["patch_size"])

  def restore_fn(self):
    """Pure `(params, patches) -> patches` at the recorded timestep, no dropout."""
    model, timestep = self.model(), self.info["timestep"]

    def restore(params, patches):
      timesteps = jnp.full((patches.shape[0],), timestep, jnp.int32)
      return model.apply(params, patches, timesteps)

    return restore


def read_config(path: str) -> dict:
  """The config.json of a workdir or a parameters folder."""
  file = os.path.join(path, CONFIG_FILE)
  config = files.read_json(file)
  if not isinstance(config, dict):
    raise TavitError(f"{file}: not a tavit_jax config")
  return config


def checkpoint_steps(workdir: str) -> list[int]:
  directory = os.path.join(workdir, "checkpoints")
  return sorted(ocp.utils.checkpoint_steps(directory)) if os.path.isdir(directory) else []


def pick_client(clients: list, name: Optional[str], where: str):
  """The client called `name`, or the first one of task `name`; None means the only task."""
  names = ", ".join(c.name for c in clients)
  if name is None:
    if len({c.task for c in clients}) > 1:
      raise TavitError(f"{where} has clients {names}: choose one with --client (a name or a task)")
    return clients[0]
  for client in clients:
    if name in (client.name, client.task):
      return client
  raise TavitError(f"{where} has no client or task '{name}'; clients: {names}")


def _is_damaged(error: Exception) -> bool:
  """Whether orbax failed because of the files (missing, another format, truncated, garbled).

  Anything else it raises on a checkpoint it could read is a bug here or in orbax and
  keeps its traceback.
  """
  if isinstance(error, (FileNotFoundError, json.JSONDecodeError)):  # No or garbled _METADATA.
    return True
  # tensorstore reading the array data: "OUT_OF_RANGE: Error reading ...", "DATA_LOSS: ...".
  return isinstance(error, ValueError) and "Error reading" in str(error)


def _restore_client(workdir: str, step: int, index: int) -> tuple[dict, int]:
  """Reads only the body and client `index`'s head and tail of a checkpoint, as numpy."""
  path = epath.Path(workdir) / "checkpoints" / str(step) / "state"
  unreadable = lambda why: TavitError(f"{path}: not a readable training checkpoint ({why})")
  handler = ocp.PyTreeCheckpointHandler()
  try:
    meta = handler.metadata(path)
    if not all(key in meta for key in ("clients", "server", "step")):
      raise unreadable(f"holds {', '.join(meta)}, not clients, server and step")
    wanted = {"clients": {"head": meta["clients"]["head"], "tail": meta["clients"]["tail"]},
              "server": {"body": meta["server"]["body"]}, "step": meta["step"]}
    item = jax.tree_util.tree_map(lambda m: np.zeros((), m.dtype), wanted)
    restore_args = jax.tree_util.tree_map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), wanted)
    state = handler.restore(path, args=ocp.args.PyTreeRestore(
        item=item, restore_args=restore_args, partial_restore=True))
  except Exception as e:  # pylint: disable=broad-except
    if _is_damaged(e):
      raise unreadable(f"{type(e).__name__}: {e}") from None
    raise
  finally:
    handler.close()
  take = lambda tree: jax.tree_util.tree_map(lambda a: a[index], tree)
  params = {"head": take(state["clients"]["head"]), "body": state["server"]["body"],
            "tail": take(state["clients"]["tail"])}
  return params, int(state["step"])


def from_workdir(workdir: str, client: Optional[str] = None, step: Optional[int] = None) -> Trained:
  """Client `client` (name or task) of a training workdir at checkpoint `step` (default: latest)."""
  workdir = files.resolve(workdir)
  config = read_config(workdir)
  if "clients" not in config or "model" not in config:
    raise TavitError(f"{os.path.join(workdir, CONFIG_FILE)}: not the config of a training workdir")
  clients = assign_clients(list(config["clients"]))
  chosen = pick_client(clients, client, workdir)
  steps = checkpoint_steps(workdir)
  if not steps:
    raise TavitError(f"{workdir} has no checkpoint yet; train first (tavit-train)")
  if step is None:
    step = steps[-1]
  elif step not in steps:
    raise TavitError(f"{workdir} has no checkpoint at step {step}; steps: {', '.join(map(str, steps))}")
  params, stored_step = _restore_client(workdir, step, clients.index(chosen))
  info = {"task": chosen.task, "client": chosen.name, "step": stored_step,
          "seed": config.get("seed", 0), "patch_size": config["data.patch_size"],
          "timestep": TIMESTEP, "model": config["model"], "source": os.path.abspath(workdir)}
  return Trained(params, config["model"], info)


def from_param_files(folder: str) -> Trained:
  """A folder written by `param_files.save` (e.g. `tavit-import-torch`)."""
  from tavit_jax.serving import param_files  # pylint: disable=g-import-not-at-top

  folder = files.resolve(folder)
  params, config, meta = param_files.load(folder)
  model_config = json.loads(json.dumps(config.to_dict()))  # Tuples as lists, like workdirs.
  info = {"task": meta["task"], "client": meta["task"], "step": None, "seed": 0,
          "patch_size": meta["patch_size"], "timestep": TIMESTEP, "model": model_config,
          "source": os.path.abspath(folder)}
  return Trained(params, model_config, info)


def is_param_files(path: str) -> bool:
  from tavit_jax.serving import param_files  # pylint: disable=g-import-not-at-top

  file = os.path.join(path, CONFIG_FILE)
  return os.path.isfile(file) and read_config(path).get("format") == param_files.FORMAT


def open_trained(path: str, client: Optional[str] = None, step: Optional[int] = None) -> Trained:
  """A workdir or a parameters folder; `client` and `step` choose within a workdir."""
  path = files.resolve(path)
  if not os.path.exists(path):
    raise TavitError(f"{path}: no such file or folder")
  if not os.path.isfile(os.path.join(path, CONFIG_FILE)):
    raise TavitError(f"{path}: neither a training workdir nor exported or imported parameters")
  if is_param_files(path):
    trained = from_param_files(path)
    check_choice(path, trained.info, client, step)
    return trained
  return from_workdir(path, client, step)


def check_choice(path: str, info: dict[str, Any], client: Optional[str], step: Optional[int]) -> None:
  """--client / --step given for a single-model folder must describe that model."""
  if client is not None and client not in (info["client"], info["task"]):
    raise TavitError(f"{path} holds only {info['client']} ({info['task']}), not '{client}'")
  if step is not None and step != info["step"]:
    raise TavitError(f"{path} holds only step {info['step']}, not {step}")
