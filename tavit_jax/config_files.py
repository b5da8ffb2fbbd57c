"""Config files: load a sibling by path (`configs/` is not a package), read a dotted field."""

import importlib.util
import os

import ml_collections


def sibling(config_file: str, name: str):
  """The module configs/<name>.py next to `config_file` (pass `__file__`)."""
  path = os.path.join(os.path.dirname(os.path.abspath(config_file)), f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"tavit_config_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def lookup(config: ml_collections.ConfigDict, dotted: str):
  """The field 'a.b' of `config`, a sub-config as a plain dict (comparable, JSON-able)."""
  for part in dotted.split("."):
    config = config[part]
  return config.to_dict() if isinstance(config, ml_collections.ConfigDict) else config
