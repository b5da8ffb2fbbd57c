"""Config files: load one by path as `--config` does, spell an override as its flag, read a
dotted field."""

import importlib.util
import json
import os

import ml_collections

from tavit_jax import files
from tavit_jax.errors import TavitError


def load(spec: str) -> ml_collections.ConfigDict:
  """`get_config([arg])` of 'path/to/config.py[:arg]' (for processes that get the path
  from another process: the ServerApp, a client started by `tavit-flower local`)."""
  path, _, arg = spec.partition(":")
  path = files.resolve(path)
  if not os.path.isfile(path):
    raise TavitError(f"config file {path} not found")
  module_spec = importlib.util.spec_from_file_location("tavit_loaded_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def override_flag(key: str, value) -> str:
  """`--config.<key>=<value>` as `tavit-train` parses it back to `value`, for a process
  that starts another one with the same overrides."""
  if isinstance(value, (list, tuple)):
    text = repr(tuple(value))
  else:
    text = json.dumps(value) if isinstance(value, bool) else str(value)
  return f"--config.{key}={text}"


def lookup(config: ml_collections.ConfigDict, dotted: str):
  """The field 'a.b' of `config`, a sub-config as a plain dict (comparable, JSON-able)."""
  for part in dotted.split("."):
    config = config[part]
  return config.to_dict() if isinstance(config, ml_collections.ConfigDict) else config
