"""One check of the whole config (training/config_check.py) before anything is written.

A bad value is one `error:` line naming its key, exit status 2, and the workdir as it was
(no config.json, no folder), so the corrected command then runs in the same workdir.
Most rows are checked in-process (`validate`, and `train_and_evaluate` for notebooks); a
few go through the installed `tavit-train` / `tavit-flower` scripts and the experiment
runner as a user types them (about 2 s each: they stop before JAX computes anything).
"""

import concurrent.futures
import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

from tavit_jax import config_files
from tavit_jax.errors import TavitError
from tavit_jax.training.config_check import validate
from tavit_jax.training.loop import train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "configs", "tiny.py")
NAN = float("nan")

# (overrides of configs/tiny.py, what the one line must start with).
BAD = [
    ({"data.batch_size": -3}, "data.batch_size must be a positive integer, not -3"),
    ({"clients": ()}, "clients must name at least one client"),
    ({"clients": ("denoising", "dehazing")}, "clients: unknown task 'dehazing'"),
    ({"train.cycles": 0}, "train.cycles must be a positive integer, not 0"),
    ({"train.client_lr": NAN}, "train.client_lr must be a finite positive number, not nan"),
    ({"train.server_lr": NAN}, "train.server_lr must be a finite positive number, not nan"),
    ({"train.server_lr": float("inf")}, "train.server_lr must be a finite positive number, "
     "not inf"),
    ({"train.client_lr": 0.0}, "train.client_lr must be a finite positive number, not 0.0"),
    ({"data.patch_size": -8}, "data.patch_size must be a positive integer, not -8"),
    ({"data.patch_size": 50}, "data.patch_size 50 must be a multiple of 4"),
    ({"data.patches_per_image": 0}, "data.patches_per_image must be a positive integer"),
    ({"data.workers": -1}, "data.workers must be a non-negative integer, not -1"),
    ({"data.suite": "imagenet"}, "data.suite must be one of"),
    ({"data.train_images": -1}, "data.train_images must be a non-negative integer, not -1"),
    ({"data.train_images": 1}, "data.train_images=1 is fewer than the 2 clients of denoising"),
    ({"data.eval_split": "val"}, "data.eval_split must be one of ('test', 'validation')"),
    ({"data.eval_split": "validation", "data.suite": "paper"}, "data.eval_split=validation "
     "needs data.suite=default or tiny"),
    ({"train.body_from": ""}, "train.body_from must be a workdir or checkpoint folder"),
    ({"train.body_from": "/tmp", "train.mode": "single_round", "model.pos_emb": "client"},
     "train.body_from needs train.mode=alternating, simultaneous or end_to_end"),
    ({"train.token_keep": 0.5, "model.mask_token": True, "train.mode": "single_round",
      "model.pos_emb": "client"}, "train.token_keep < 1 is not applied by train.mode=single_round"),
    ({"seed": -1}, "seed must be a non-negative integer, not -1"),
    ({"train.mode": "federated"}, "train.mode must be one of"),
    ({"model.pos_emb": "sinusoidal"}, "model.pos_emb must be one of ('server', 'client', 'none')"),
    ({"model.dtype": "float16"}, "model.dtype must be one of"),
    ({"model.body_heads": 3}, "model.body_heads=3 must divide the token width 32"),
    ({"model.groups": 3}, "model.groups=3 must divide every width"),
    ({"model.body_dropout": 1.0}, "model.body_dropout must be a finite number in [0, 1)"),
    ({"model.feature_noise": 1.0}, "model.feature_clip and model.feature_noise"),
    ({"train.client_phase_steps": (3, 3)}, "train.client_phase_steps has 2 entries"),
    ({"train.client_phase_steps": (-1,)}, "train.client_phase_steps must be a tuple of "
     "non-negative"),
    ({"train.client_phase_steps": (0,), "train.server_phase_steps": 0},
     "train.client_phase_steps and train.server_phase_steps are all 0"),
    ({"train.server_phase_steps": -2}, "train.server_phase_steps must be a non-negative integer"),
    ({"train.unify_every": -2}, "train.unify_every must be an integer >= -1, not -2"),
    ({"train.lr_decay": "linear"}, "train.lr_decay must be 'constant' or 'cosine'"),
    ({"train.b2": 1.0}, "train.b2 must be a finite number in [0, 1)"),
    ({"train.grad_clip": -1.0}, "train.grad_clip must be a finite number >= 0"),
    ({"train.checkpoint_every": 0}, "train.checkpoint_every must be a positive integer"),
    ({"train.wire_dtype": "int8"}, "train.wire_dtype must be one of ('float32', 'bfloat16')"),
    ({"train.client_map": "pmap"}, "train.client_map must be one of ('auto', 'vmap', 'loop')"),
    ({"train.permute_tokens": "per_batch"}, "train.permute_tokens must be one of"),
    # Options that do not go together.
    ({"train.permute_tokens": "per_sample"}, "train.permute_tokens=per_sample needs model.pos_emb"),
    ({"train.token_keep": 0.5}, "train.token_keep < 1 needs model.mask_token=True"),
    ({"train.token_keep": 0.0}, "train.token_keep must be a finite number in (0, 1]"),
    ({"train.token_mix": "cutmix", "train.mode": "end_to_end"}, "train.token_mix=cutmix mixes"),
    ({"train.token_mix": "cutmix", "train.mix_clients": 3}, "train.mix_pairing=same_task needs "
     "every task's clients in groups of train.mix_clients=3"),
    ({"train.token_mix": "shuffle"}, "train.token_mix must be one of"),
    ({"train.mode": "single_round"}, "train.mode=single_round uploads permuted tokens, which needs "
     "model.pos_emb=none or client"),
    ({"train.mode": "single_round", "model.pos_emb": "client"}, "train.mode=single_round needs "
     "the train.single_round section"),
    ({"eval.stride": 0}, "eval.stride must be an integer in [1, 32] (data.patch_size), not 0"),
    ({"eval.stride": 48}, "eval.stride must be an integer in [1, 32]"),
    ({"eval.blend": "max"}, "eval.blend must be one of ('uniform', 'weighted')"),
    ({"eval.every": "step"}, "eval.every must be one of ('phase', 'cycle')"),
    ({"eval.max_images": -1}, "eval.max_images must be a non-negative integer"),
    ({"flower.reply_timeout": 0.0}, "flower.reply_timeout must be a finite positive number of "
     "seconds"),
]


def tiny(overrides=None):
  config = config_files.load(TINY)
  with config.unlocked():
    config.update_from_flattened_dict(dict(overrides or {}))
  return config


@pytest.mark.parametrize("overrides, message", BAD,
                         ids=[",".join(f"{k}={v}" for k, v in o.items()) for o, _ in BAD])
def test_a_bad_value_is_one_line_naming_its_key(overrides, message):
  with pytest.raises(TavitError) as error:
    validate(tiny(overrides))
  text = str(error.value)
  assert text.startswith(message) and "\n" not in text, text
  assert any(key.rsplit(".", 1)[-1] in text for key in overrides), text


def _shipped():
  specs = [f"configs/{name}" for name in sorted(os.listdir(os.path.join(ROOT, "configs")))
           if name.endswith(".py") and name != "__init__.py"]
  specs += [f"configs/single_round.py:{size}" for size in ("default", "paper", "tiny")]
  specs += [f"configs/baselines.py:{kind},{task}{size}" for kind in ("base", "single")
            for task in ("deblocking", "denoising", "deraining", "deblurring")
            for size in ("", ",paper", ",tiny")]
  return specs + [f"configs/baselines.py:sca_mtl{size}"
                  for size in ("", ",default", ",paper", ",tiny")]


@pytest.mark.parametrize("spec", _shipped())
def test_every_shipped_config_validates(spec):
  assert validate(config_files.load(os.path.join(ROOT, spec))) is not None


def test_every_run_of_the_experiment_runner_validates():
  """Every run of every table at every size (in a process of its own: compare.py defines
  absl flags)."""
  script = ("import compare\n"
            "from tavit_jax.training.config_check import validate\n"
            "for table in compare.TABLES:\n"
            "  for size in compare.SIZES:\n"
            "    for run in compare.plan(table, size, 1, None, (), None)[2]:\n"
            "      validate(run.load())\n"
            "print('validated')\n")
  result = subprocess.run([sys.executable, "-c", script], cwd=os.path.join(ROOT, "experiments"),
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0 and "validated" in result.stdout, result.stderr[-2000:]


def test_a_notebook_call_leaves_the_workdir_untouched(tmp_path):
  workdir = tmp_path / "new"
  with pytest.raises(TavitError, match="train.cycles must be a positive integer"):
    train_and_evaluate(tiny({"train.cycles": 0}), str(workdir))
  assert not workdir.exists()


def _script(name: str) -> list[str]:
  """The installed console script, as a user types it (its module where none is installed)."""
  path = os.path.join(os.path.dirname(sys.executable), name)
  module = {"tavit-train": "tavit_jax.cli.train", "tavit-flower": "tavit_jax.cli.flower"}[name]
  return [path] if os.path.exists(path) else [sys.executable, "-m", module]


# Through the commands themselves: the three, a NaN, a name, a combination, the
# issue's typo (in a workdir holding a file of the user's), `tavit-flower` and the
# experiment runner. {name: (the key, what its one line starts with)}.
TYPO = "--config.data.patch_size=50"
COMMANDS = {
    "--config.data.batch_size=-3": ("data.batch_size",
                                    "data.batch_size must be a positive integer, not -3"),
    "--config.clients=()": ("clients", "clients must name at least one client"),
    "--config.train.cycles=0": ("train.cycles", "train.cycles must be a positive integer, not 0"),
    "--config.train.server_lr=nan": ("train.server_lr",
                                     "train.server_lr must be a finite positive number, not nan"),
    "--config.model.pos_emb=sinusoidal": ("model.pos_emb", "model.pos_emb must be one of"),
    "--config.train.token_keep=0.5": ("train.token_keep",
                                      "train.token_keep < 1 needs model.mask_token=True"),
    TYPO: ("data.patch_size", "data.patch_size 50 must be a multiple of 4"),
    "tavit-flower local": ("train.cycles", "train.cycles must be a positive integer, not 0"),
    "compare.py": ("data.batch_size", "run base_denoising_seed0 (configs/baselines.py:"
                   "base,denoising,tiny): data.batch_size must be a positive integer, not -3"),
}


def _command(name: str, folder: pathlib.Path) -> list[str]:
  if name == "tavit-flower local":
    config = os.path.join(ROOT, "configs", "flower_tiny.py")
    return _script("tavit-flower") + ["local", f"--config={config}", f"--workdir={folder}",
                                      "--config.train.cycles=0"]
  if name == "compare.py":
    return [sys.executable, os.path.join(ROOT, "experiments", "compare.py"), "--size=tiny",
            "--seeds=1", f"--out={folder}", "--override=data.batch_size=-3"]
  return _script("tavit-train") + [f"--config={TINY}", f"--workdir={folder}", name]


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
  """{name: (command, its workdir or --out, result)}, all run at once (about 2 s each alone)."""
  tmp = tmp_path_factory.mktemp("commands")
  folders = {name: tmp / f"run{k}" / "workdir" for k, name in enumerate(COMMANDS)}
  folders[TYPO].mkdir(parents=True)
  (folders[TYPO] / "notes.txt").write_text("mine")
  commands = {name: _command(name, folder) for name, folder in folders.items()}
  run = lambda command: subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                                       timeout=180)
  with concurrent.futures.ThreadPoolExecutor(len(commands)) as pool:
    results = dict(zip(commands, pool.map(run, commands.values())))
  return {name: (commands[name], folders[name], results[name]) for name in COMMANDS}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_command_refuses_before_writing(refused, name):
  _, folder, result = refused[name]
  key, message = COMMANDS[name]
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert result.returncode == 2, result.stderr[-2000:]
  assert len(errors) == 1 and errors[0].startswith(f"error: {message}"), result.stderr[-2000:]
  assert key in errors[0] and "Traceback" not in result.stderr, result.stderr[-2000:]
  assert (sorted(os.listdir(folder)) if folder.exists() else None) == (
      ["notes.txt"] if name == TYPO else None)


def test_the_corrected_command_runs_in_the_same_workdir(refused):
  """The issue's case: after `--config.data.patch_size=50` was refused, the command without
  it proceeds in that workdir past the point where a stale config.json used to refuse it
  (and is stopped there: the training itself is other tests' business)."""
  command, workdir, _ = refused[TYPO]
  command = command[:-1]  # The same command without the typo.
  process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
  try:
    deadline, stored = time.time() + 180, None
    while stored is None and process.poll() is None and time.time() < deadline:
      try:
        stored = json.loads((workdir / "config.json").read_text())
      except (OSError, ValueError):  # Not written yet, or half written.
        time.sleep(0.2)
  finally:
    process.kill()
    _, stderr = process.communicate()
  assert stored is not None, stderr[-2000:]
  assert stored["data.patch_size"] == 32
  assert "error:" not in stderr, stderr[-2000:]
