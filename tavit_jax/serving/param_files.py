"""Trained parameters on disk without a training run: `{'head','body','tail'}` + model config.

Layout of a folder:
  params.npz   one array per leaf, named by its path ('head/ResnetBlock_0/Block_0/Conv_0/kernel')
  config.json  {'format', 'task', 'patch_size', 'model' (a config.model section), 'source'}
Plain numpy and JSON so that any tool (or a reader without JAX) can open it.
"""

import json
import os
from typing import Any

import ml_collections
import numpy as np

from tavit_jax import files
from tavit_jax.errors import TavitError

FORMAT = "tavit_jax.params/1"
PARTS = ("head", "body", "tail")
CONFIG_FILE = "config.json"
PARAMS_FILE = "params.npz"


def save(folder: str, params: dict, model_config: ml_collections.ConfigDict, *, task: str,
         patch_size: int, source: Any = None) -> None:
  """Writes `params` ({'head','body','tail'}) and the config that builds their model.

  config.json comes last, so a folder without it is incomplete; an existing folder is
  overwritten only if it holds saved parameters already.
  """
  folder = files.resolve(folder)
  config_path, params_path = (os.path.join(folder, name) for name in (CONFIG_FILE, PARAMS_FILE))
  if os.path.exists(folder) and not os.path.isdir(folder):
    raise TavitError(f"{folder}: exists and is not a folder")
  if os.path.isdir(folder) and os.listdir(folder) and not os.path.isfile(config_path):
    raise TavitError(f"{folder}: folder is not empty and holds no saved parameters; choose another")
  os.makedirs(folder, exist_ok=True)
  if os.path.exists(config_path):
    os.remove(config_path)
  np.savez(params_path, **files.flatten({part: params[part] for part in PARTS}))
  meta = {"format": FORMAT, "task": task, "patch_size": patch_size,
          "model": model_config.to_dict(), "source": source}
  with open(config_path, "w") as f:
    json.dump(meta, f, indent=2, default=list)


def load(folder: str) -> tuple[dict, ml_collections.ConfigDict, dict]:
  """(params, model config, metadata) of a folder written by `save`."""
  folder = files.resolve(folder)
  config_path, params_path = (os.path.join(folder, name) for name in (CONFIG_FILE, PARAMS_FILE))
  for path in (config_path, params_path):
    if not os.path.isfile(path):
      raise TavitError(f"{folder} holds no saved parameters: {path} is missing")
  meta = files.read_json(config_path)
  if not isinstance(meta, dict) or meta.get("format") != FORMAT:
    found = meta.get("format") if isinstance(meta, dict) else None
    raise TavitError(f"{config_path}: format {found!r} is not {FORMAT!r}")
  try:
    with np.load(params_path) as arrays:
      params = files.unflatten({key: arrays[key] for key in arrays.files})
  except (OSError, ValueError) as e:
    raise TavitError(f"{params_path}: not readable ({e})") from None
  config = ml_collections.ConfigDict(meta["model"])
  config.dim_mults = tuple(config.dim_mults)
  return params, config, meta
