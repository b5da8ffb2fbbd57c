"""The exported-model folder: one client's network, runnable with jax and numpy alone.

Layout:
  tavit.json        what the model is (task, client, step, patch size, model section,
                    timestep) and the sha256 of the two files below
  params.npz        {'head','body','tail'} parameters, one array per leaf named by its
                    path ('head/ResnetBlock_0/Block_0/Conv_0/kernel')
  restore.jaxexport a serialized `jax.export` program `(params, patches) -> patches` for
                    float32 patches (b, P, P, 3) in [-1, 1], any batch size b
  README.md         how to load it without tavit_jax

Parameters are arguments of the program, not constants inside it: the weights exist once
on disk (the paper model's would otherwise double the folder to 360 MB), the program
stays small, and any parameters of the same shapes (another client of the same run, a
later checkpoint) run with the same program.
"""

import hashlib
import json
import os
from typing import Any

import jax
import numpy as np

from tavit_jax import files
from tavit_jax.errors import TavitError

FORMAT = "tavit_jax.export/1"
INFO_FILE = "tavit.json"
PARAMS_FILE = "params.npz"
PROGRAM_FILE = "restore.jaxexport"
README_FILE = "README.md"

# Also what README.md shows users; a test runs it in a process where tavit_jax and flax
# cannot be imported.
LOADER = '''\
import json, pathlib
import jax, numpy as np  # jax.export also needs the `flatbuffers` package.

folder = pathlib.Path("{folder}")
info = json.loads((folder / "tavit.json").read_text())
params = {{}}
with np.load(folder / "params.npz") as arrays:
  for key in arrays.files:
    *parents, leaf = key.split("/")
    node = params
    for name in parents:
      node = node.setdefault(name, {{}})
    node[leaf] = arrays[key]
program = jax.export.deserialize(bytearray((folder / "restore.jaxexport").read_bytes()))
restore = jax.jit(program.call)
# patches: float32 (batch, P, P, 3) in [-1, 1], P = info["patch_size"]; any batch size.
'''


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _readme(info: dict) -> str:
  return (f"# TAViT restoration network: {info['client']} ({info['task']})\n\n"
          f"Exported by tavit_jax from {info['source']} at step {info['step']}. Patches of "
          f"{info['patch_size']}x{info['patch_size']} RGB in [-1, 1], timestep {info['timestep']}.\n"
          "Whole images: `tavit-restore --model=<this folder> image.png --out=restored`.\n\n"
          "Without tavit_jax (jax, numpy and flatbuffers only):\n\n```python\n"
          + LOADER.format(folder=".") + "restored = restore(params, patches)\n```\n")


def write(out: str, params: dict, program: bytes, info: dict[str, Any]) -> None:
  """Writes the folder; tavit.json comes last, so a folder without it is incomplete."""
  if os.path.exists(out) and not os.path.isdir(out):
    raise TavitError(f"{out}: exists and is not a folder")
  if os.path.isdir(out) and os.listdir(out) and not os.path.exists(os.path.join(out, INFO_FILE)):
    raise TavitError(f"{out}: folder is not empty and holds no exported model; choose another --out")
  os.makedirs(out, exist_ok=True)
  info_path = os.path.join(out, INFO_FILE)
  if os.path.exists(info_path):
    os.remove(info_path)
  params_path, program_path = (os.path.join(out, n) for n in (PARAMS_FILE, PROGRAM_FILE))
  np.savez(params_path, **files.flatten(params))
  with open(program_path, "wb") as f:
    f.write(program)
  with open(os.path.join(out, README_FILE), "w") as f:
    f.write(_readme(info))
  listed = {"params": {"name": PARAMS_FILE, "sha256": _sha256(params_path)},
            "program": {"name": PROGRAM_FILE, "sha256": _sha256(program_path)}}
  with open(info_path, "w") as f:
    json.dump({"format": FORMAT, **info, "files": listed}, f, indent=1)


def is_artifact(path: str) -> bool:
  return os.path.isfile(os.path.join(path, INFO_FILE))


def read_info(folder: str) -> dict:
  path = os.path.join(folder, INFO_FILE)
  info = files.read_json(path)
  if not isinstance(info, dict) or info.get("format") != FORMAT:
    found = info.get("format") if isinstance(info, dict) else None
    raise TavitError(f"{path}: format {found!r} is not {FORMAT!r}; export again with this version")
  return info


def _checked(folder: str, info: dict, part: str) -> str:
  """Path of a listed file whose checksum matches: truncation or edits fail here, clearly."""
  entry = info["files"][part]
  path = os.path.join(folder, entry["name"])
  if not os.path.isfile(path):
    raise TavitError(f"{path}: missing from the exported model")
  if _sha256(path) != entry["sha256"]:
    raise TavitError(f"{path}: checksum differs from {INFO_FILE} (truncated or modified); export again")
  return path


def read(folder: str) -> tuple[dict, jax.export.Exported, dict]:
  """(params, deserialized program, info) of an exported-model folder, verified."""
  info = read_info(folder)
  params_path = _checked(folder, info, "params")
  program_path = _checked(folder, info, "program")
  try:
    with np.load(params_path) as arrays:
      params = files.unflatten({key: arrays[key] for key in arrays.files})
  except (OSError, ValueError) as e:
    raise TavitError(f"{params_path}: not readable ({e})") from None
  with open(program_path, "rb") as f:
    data = f.read()
  try:
    program = jax.export.deserialize(bytearray(data))
  except ImportError as e:  # jax's optional flatbuffers.
    raise TavitError(f"{program_path}: {e}") from None
  except Exception as e:  # pylint: disable=broad-except  # flatbuffers raises anything.
    raise TavitError(f"{program_path}: not a jax.export program ({type(e).__name__}: {e})") from None
  return params, program, info
