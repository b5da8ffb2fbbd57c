"""`tavit-import-torch`: the official PyTorch checkpoints → a folder tavit_jax can load.

  tavit-import-torch --task=deblocking \\
      --head=TAViT_deblocking_head.pt --tail=TAViT_deblocking_tail.pt \\
      --body=TAViT_body_cycle3.pth --out=imported/deblocking

Needs torch (`pip install 'tavit_jax[torch]'`). The folder layout is in serving/param_files.py.
"""

from tavit_jax.cli.common import no_arguments, run_app

def _main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  # pylint: disable=g-import-not-at-top  # JAX loads only once the flags are good.
  from tavit_jax.models import count_params
  from tavit_jax.serving.torch_import import import_official

  no_arguments(argv)
  values = flags.FLAGS
  params = import_official(values.head, values.body, values.tail, task=values.task,
                           out=values.out, model=values.model)
  counts = ", ".join(f"{part} {count_params(params[part]):,}" for part in ("head", "body", "tail"))
  print(f"wrote {values.out} ({counts} parameters); next: tavit-export --workdir={values.out}")


def main():
  # Flags are defined here, not on import, so the CLI modules can share a process.
  from absl import flags  # pylint: disable=g-import-not-at-top

  flags.DEFINE_string("head", None, "official head state dict (TAViT_<task>_head*.pt)")
  flags.DEFINE_string("tail", None, "official tail state dict (TAViT_<task>_tail*.pt)")
  flags.DEFINE_string("body", None, "official body state dict (TAViT_body_cycle<N>.pth)")
  flags.DEFINE_string("task", None, "the task of the head and tail, e.g. deblocking")
  flags.DEFINE_string("out", None, "folder to write (params.npz and config.json)")
  flags.DEFINE_enum("model", "paper", ("paper", "tiny"), "model sizes of the checkpoints")
  flags.mark_flags_as_required(["head", "tail", "body", "task", "out"])
  run_app(_main)


if __name__ == "__main__":
  main()
