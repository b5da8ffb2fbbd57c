"""`train.body_from`: start a run's body from another run's checkpoint (new-task transfer).

A client of a task the body never saw joins, downloads the body once and, with
`train.server_phase_steps=0`, trains only its head and tail through it (EXPERIMENTS.md,
transfer). The source is a training workdir (its latest checkpoint) or one checkpoint
folder of it (`<workdir>/checkpoints/<step>`); only the server's body is read, so the
source may have other clients, tasks or a different protocol, but not another body.
"""

import json
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from tavit_jax import files
from tavit_jax.errors import TavitError


def checkpoint_folder(source: str) -> str:
  """The checkpoint folder (`.../checkpoints/<step>`) that `source` names."""
  path = files.resolve(source)
  if not os.path.isdir(path):
    raise TavitError(f"train.body_from={source}: no such folder")
  if os.path.isdir(os.path.join(path, "state")):  # One checkpoint.
    return path
  directory = os.path.join(path, "checkpoints")
  steps = sorted(ocp.utils.checkpoint_steps(directory)) if os.path.isdir(directory) else []
  if not steps:
    raise TavitError(f"train.body_from={source}: neither a training workdir with a checkpoint "
                     f"nor a checkpoint folder (<workdir>/checkpoints/<step>)")
  return os.path.join(directory, str(steps[-1]))


def load_body(source: str, like_body) -> dict:
  """The body stored under `source`, as numpy arrays laid out like `like_body` (the body
  this run's model builds); a one-line refusal if it is missing or another shape."""
  folder = checkpoint_folder(source)
  path = epath.Path(folder) / "state"
  handler = ocp.PyTreeCheckpointHandler()
  try:
    meta = handler.metadata(path)
    if "server" not in meta or "body" not in meta["server"]:
      raise TavitError(f"train.body_from: {folder} holds no server body")
    wanted = {"server": {"body": meta["server"]["body"]}}
    item = jax.tree_util.tree_map(lambda m: np.zeros((), m.dtype), wanted)
    restore_args = jax.tree_util.tree_map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
                                          wanted)
    body = handler.restore(path, args=ocp.args.PyTreeRestore(
        item=item, restore_args=restore_args, partial_restore=True))["server"]["body"]
  except (FileNotFoundError, json.JSONDecodeError, ValueError) as e:
    raise TavitError(f"train.body_from: {folder} is not a readable checkpoint "
                     f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
  finally:
    handler.close()
  shapes = lambda tree: jax.tree_util.tree_map(lambda a: tuple(np.shape(a)), tree)
  if shapes(body) != shapes(like_body):
    raise TavitError(f"train.body_from: the body in {folder} is not this run's body (another "
                     f"model section: its layers or widths differ)")
  return jax.tree_util.tree_map(lambda a, b: np.asarray(a, np.asarray(b).dtype), body, like_body)
