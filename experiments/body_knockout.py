"""How much of a trained run's restoration passes through its body (issue 28, EXPERIMENTS.md):
each task's first client scored with the body as trained, at its initialisation, skipped
(f_B = f_H) and silenced (f_B = 0), on the validation images.

  python experiments/body_knockout.py --workdir=workdir
  python experiments/body_knockout.py --workdir=experiments/results/issue28/runs/<run> \
      --out=experiments/results/issue28/knockout_<run>.md

If the body carried what the tail needs, skipping or silencing it would cost decibels; if
the tail restores from the head's skips, the four columns agree. Evaluation settings and
data come from --config (the main job's by default); parameters from the workdir's latest
checkpoint.
"""

import os
import sys

from absl import flags
from ml_collections import config_flags

from tavit_jax.cli.common import no_arguments, run_app

_WORKDIR = flags.DEFINE_string("workdir", None, "a tavit-train workdir")
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "configs", "default.py"), "evaluation and data settings")
_SPLIT = flags.DEFINE_enum("eval_split", "validation", ["validation", "test"], "images scored")
_OUT = flags.DEFINE_string("out", None, "also write the table to this Markdown file")
flags.mark_flags_as_required(["workdir"])

VARIANTS = ("trained body", "initial body", "body skipped (f_B = f_H)", "body silenced (f_B = 0)")


def _restore_fns(trained):
  """Per variant, `patches -> patches` of `trained` (sources.Trained) with that body."""
  # pylint: disable=g-import-not-at-top  # JAX loads only once the flags are good.
  import jax
  import jax.numpy as jnp
  import numpy as np
  from tavit_jax import protocol

  model, params = trained.model(), trained.params
  initial = model.init_body(protocol.initial_keys(jax.random.PRNGKey(trained.info["seed"]))[0])
  timesteps = lambda patches: jnp.full((patches.shape[0],), trained.info["timestep"], jnp.int32)

  def through(body_fn):
    @jax.jit
    def restore(patches):
      f_h, cache = model.head_apply(params["head"], patches, timesteps(patches))
      return model.tail_apply(params["tail"], body_fn(f_h), cache)
    return lambda patches: np.asarray(restore(jnp.asarray(patches)))

  return {VARIANTS[0]: through(lambda f_h: model.body_apply(params["body"], f_h)),
          VARIANTS[1]: through(lambda f_h: model.body_apply(initial, f_h)),
          VARIANTS[2]: through(lambda f_h: f_h),
          VARIANTS[3]: through(jnp.zeros_like)}


def _main(argv):
  no_arguments(argv)
  # pylint: disable=g-import-not-at-top
  from tavit_jax import files, roster
  from tavit_jax.serving import sources
  from tavit_jax.training.evaluate import evaluate_task

  config, workdir = _CONFIG.value, files.resolve(_WORKDIR.value)
  tasks = list(roster.first_of_each_task(sources.read_config(workdir)["clients"]))
  lines = [f"`python experiments/body_knockout.py --workdir={_WORKDIR.value}`", "",
           f"Output PSNR (dB) on the {_SPLIT.value} images of each task's first client of "
           f"{_WORKDIR.value}, with its body replaced at evaluation only.", "",
           "| task / set | input | " + " | ".join(VARIANTS) + " |",
           "|---|---|" + "---|" * len(VARIANTS)]
  for task in tasks:
    trained = sources.from_workdir(workdir, task)
    scores = {}
    for variant, restore in _restore_fns(trained).items():
      rows, _ = evaluate_task(restore, task, config.eval, suite=config.data.suite,
                              seed=trained.info["seed"], patch_size=trained.info["patch_size"],
                              data_dir=config.data.data_dir, eval_split=_SPLIT.value)
      scores[variant] = rows
    for i, row in enumerate(scores[VARIANTS[0]]):
      cells = [f"{scores[v][i]['output/psnr']:.2f}" for v in VARIANTS]
      lines.append(f"| {task} / {row['eval_set']} | {row['input/psnr']:.2f} | "
                   + " | ".join(cells) + " |")
    print(lines[-1], file=sys.stderr, flush=True)
  table = "\n".join(lines) + "\n"
  print(table)
  if _OUT.value:
    with open(files.resolve(_OUT.value), "w") as f:
      f.write(table)


if __name__ == "__main__":
  run_app(_main)
