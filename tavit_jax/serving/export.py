"""One client's trained network → a folder that runs with jax and numpy alone.

The folder layout is in artifact.py; the command is `tavit-export` (cli/export.py).
"""

from typing import Sequence

import jax
import jax.numpy as jnp

from tavit_jax import files
from tavit_jax.errors import TavitError
from tavit_jax.serving import artifact, sources

# The exported program carries a lowering for each, so a CPU machine exports for GPU/TPU.
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")


def export_program(trained: sources.Trained, platforms: Sequence[str] = PLATFORMS) -> bytes:
  """The serialized `(params, patches) -> patches` program, batch size symbolic."""
  unknown = sorted(set(platforms) - set(PLATFORMS))
  if unknown or not platforms:
    raise TavitError(f"platforms must be some of {', '.join(PLATFORMS)}, not {', '.join(platforms)}")
  spec = lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype)
  size = trained.info["patch_size"]
  patches = jax.ShapeDtypeStruct(jax.export.symbolic_shape(f"b, {size}, {size}, 3"), jnp.float32)
  exported = jax.export.export(jax.jit(trained.restore_fn()), platforms=tuple(platforms))(
      jax.tree_util.tree_map(spec, trained.params), patches)
  try:
    return exported.serialize()
  except ImportError as e:  # jax's optional flatbuffers.
    raise TavitError(f"cannot serialize the program: {e}") from None


def export(source: str, out: str, client=None, step=None,
           platforms: Sequence[str] = PLATFORMS) -> dict:
  """Writes the exported model of `client` at `step` of `source` to `out`; returns its info."""
  source, out = files.resolve(source), files.resolve(out)
  if artifact.is_artifact(source):
    raise TavitError(f"{source}: already an exported model; export from a training workdir")
  trained = sources.open_trained(source, client, step)
  info = dict(trained.info, platforms=list(platforms), jax_version=jax.__version__)
  artifact.write(out, trained.params, export_program(trained, platforms), info)
  return info
