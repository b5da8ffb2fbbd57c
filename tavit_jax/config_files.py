"""Config files build on each other, but `configs/` is not a package: load a sibling by path."""

import importlib.util
import os


def sibling(config_file: str, name: str):
  """The module configs/<name>.py next to `config_file` (pass `__file__`)."""
  path = os.path.join(os.path.dirname(os.path.abspath(config_file)), f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"tavit_config_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
