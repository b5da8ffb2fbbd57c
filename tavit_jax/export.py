"""`tavit-export`: one client's trained network → a folder that runs with jax and numpy alone.

  tavit-export --workdir=<run> --client=deraining_1 --out=exported/deraining [--step=N]

`--client` is a client name or a task (its first client); `--workdir` may also be a folder
of imported parameters (`tavit-import-torch`). The folder layout is in artifact.py.
"""

import jax
import jax.numpy as jnp

from tavit_jax import artifact, paths, sources
from tavit_jax.errors import TavitError, run_app

# The exported program carries a lowering for each, so a CPU machine exports for GPU/TPU.
PLATFORMS = ("cpu", "cuda", "rocm", "tpu")


def export_program(trained: sources.Trained) -> bytes:
  """The serialized `(params, patches) -> patches` program, batch size symbolic."""
  spec = lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype)
  size = trained.info["patch_size"]
  patches = jax.ShapeDtypeStruct(jax.export.symbolic_shape(f"b, {size}, {size}, 3"), jnp.float32)
  exported = jax.export.export(jax.jit(trained.restore_fn()), platforms=PLATFORMS)(
      jax.tree_util.tree_map(spec, trained.params), patches)
  try:
    return exported.serialize()
  except ImportError as e:  # jax's optional flatbuffers.
    raise TavitError(f"cannot serialize the program: {e}") from None


def export(source: str, out: str, client=None, step=None) -> dict:
  """Writes the exported model of `client` at `step` of `source` to `out`; returns its info."""
  source, out = paths.resolve(source), paths.resolve(out)
  if artifact.is_artifact(source):
    raise TavitError(f"{source}: already an exported model; export from a training workdir")
  trained = sources.open_trained(source, client, step)
  info = dict(trained.info, platforms=list(PLATFORMS), jax_version=jax.__version__)
  artifact.write(out, trained.params, export_program(trained), info)
  return info


def _main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise flags.Error(f"unexpected arguments: {' '.join(argv[1:])}")
  values = flags.FLAGS
  info = export(values.workdir, values.out, values.client, values.step)
  print(f"exported {info['client']} ({info['task']}) at step {info['step']} to {values.out}")


def main():
  # Flags are defined here, not on import, so the CLI modules can share a process.
  from absl import flags  # pylint: disable=g-import-not-at-top

  flags.DEFINE_string("workdir", None, "training workdir (or imported parameters folder)")
  flags.DEFINE_string("client", None, "client name (e.g. deraining_1) or task (its first client)")
  flags.DEFINE_string("out", None, "folder to write the exported model to")
  flags.DEFINE_integer("step", None, "checkpoint step (default: the latest)")
  flags.mark_flags_as_required(["workdir", "out"])
  run_app(_main)


if __name__ == "__main__":
  main()
