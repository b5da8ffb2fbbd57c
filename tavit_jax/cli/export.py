"""`tavit-export`: one client's trained network → a folder that runs with jax and numpy alone.

  tavit-export --workdir=<run> --client=deraining_1 --out=exported/deraining [--step=N]

`--client` is a client name or a task (its first client); `--workdir` may also be a folder
of imported parameters (`tavit-import-torch`). The folder layout is in serving/artifact.py.
"""

from tavit_jax.cli.common import no_arguments, run_app


def _main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  from tavit_jax.serving import export  # pylint: disable=g-import-not-at-top  # JAX after the flags.

  no_arguments(argv)
  values = flags.FLAGS
  info = export.export(values.workdir, values.out, values.client, values.step, values.platforms)
  print(f"exported {info['client']} ({info['task']}) at step {info['step']} to {values.out}")


def main():
  # Flags are defined here, not on import, so the CLI modules can share a process.
  from absl import flags  # pylint: disable=g-import-not-at-top

  flags.DEFINE_string("workdir", None, "training workdir (or imported parameters folder)")
  flags.DEFINE_string("client", None, "client name (e.g. deraining_1) or task (its first client)")
  flags.DEFINE_string("out", None, "folder to write the exported model to")
  flags.DEFINE_integer("step", None, "checkpoint step (default: the latest)")
  flags.DEFINE_list("platforms", ["cpu", "cuda", "rocm", "tpu"],
                    "platforms the program is lowered for (fewer: a faster export)")
  flags.mark_flags_as_required(["workdir", "out"])
  run_app(_main)


if __name__ == "__main__":
  main()
