"""`tavit-import-torch`: the official PyTorch checkpoints → a folder tavit_jax can load.

  tavit-import-torch --task=deblocking \\
      --head=TAViT_deblocking_head.pt --tail=TAViT_deblocking_tail.pt \\
      --body=TAViT_body_cycle3.pth --out=imported/deblocking

Needs torch (`pip install 'tavit_jax[torch]'`). The folder layout is in param_files.py.
"""

from tavit_jax.errors import TavitError, run_app

MODELS = ("paper", "tiny")


def import_official(head: str, body: str, tail: str, *, task: str, out: str,
                    model: str = "paper") -> dict:
  """Converts and writes the three files; returns the parameters."""
  # pylint: disable=g-import-not-at-top  # JAX loads only once the flags are good.
  from tavit_jax import models, param_files, paths, torch_import
  from tavit_jax.data.tasks import TASKS
  if task not in TASKS:
    raise TavitError(f"--task must be one of {', '.join(TASKS)}, not {task!r}")
  head, body, tail, out = map(paths.resolve, (head, body, tail, out))
  config = {"paper": models.paper_config, "tiny": models.tiny_config}[model]()
  params = torch_import.load_official(head, body, tail, config)
  param_files.save(out, params, config, task=task, patch_size=torch_import.PATCH_SIZE,
                   source={"head": head, "body": body, "tail": tail, "from": "official PyTorch"})
  return params


def _main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  from tavit_jax.models import count_params  # pylint: disable=g-import-not-at-top

  if len(argv) > 1:
    raise flags.Error(f"unexpected arguments: {' '.join(argv[1:])}")
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
  flags.DEFINE_enum("model", "paper", MODELS, "model sizes of the checkpoints")
  flags.mark_flags_as_required(["head", "tail", "body", "task", "out"])
  run_app(_main)


if __name__ == "__main__":
  main()
