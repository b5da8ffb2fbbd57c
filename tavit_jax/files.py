"""Files the user names and files we write: paths, JSON, parameter trees as flat arrays.

Paths a user gives (CLI flags, public functions) are resolved once where they enter.

orbax-checkpoint (0.12.8 and later) refuses relative paths, and a path printed in a message
or recorded in a file (an export's `source`) should name the same place wherever it is read.
So every user path is made absolute, with `~` expanded, at the boundary, and the code
behind it only ever sees absolute paths.
"""

import json
import os
from typing import Optional

import numpy as np

from tavit_jax.errors import TavitError


def resolve(path: Optional[str]) -> Optional[str]:
  """`path` with `~` expanded, made absolute against the current directory.

  None and "" (an optional flag left unset) come back unchanged.
  """
  if not path:
    return path
  return os.path.abspath(os.path.expanduser(os.fspath(path)))


def read_json(path: str):
  """A JSON file's content; an unreadable or malformed file is a one-line error naming it."""
  try:
    with open(path) as f:
      return json.load(f)
  except OSError as e:
    raise TavitError(f"{path}: cannot open ({e.strerror})") from None
  except ValueError as e:
    raise TavitError(f"{path}: not valid JSON ({e})") from None


def write_json_atomic(path: str, value) -> None:
  """`value` as JSON at `path`, whole or not at all (a killed process leaves the old file)."""
  with open(path + ".tmp", "w") as f:
    json.dump(value, f, indent=1)
  os.replace(path + ".tmp", path)


def flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
  """{'a': {'b': x}} -> {'a/b': x} as numpy arrays (Flax names never hold '/')."""
  flat = {}
  for name, value in tree.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f"{prefix}{name}/"))
    else:
      flat[f"{prefix}{name}"] = np.asarray(value)
  return flat


def unflatten(flat) -> dict:
  tree: dict = {}
  for key, value in flat.items():
    *parents, leaf = key.split("/")
    node = tree
    for name in parents:
      node = node.setdefault(name, {})
    node[leaf] = value
  return tree
