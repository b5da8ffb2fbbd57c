"""One check of a whole experiment config, before anything runs or is written.

`validate(config)` refuses, in one line naming the key, every field of the wrong type or
out of range (sizes and steps, at least one client, finite learning rates), every unknown
name (tasks, suite, mode, pos_emb, wire dtype, token options, client_map, blend, ...) and
every combination a run would refuse later. The refusals that live beside the code they
protect (protocol.py, schedule.py, models.build, the training protocols' `check`,
state.optimizer) are called, not copied. `tavit-train`, `tavit-flower` (whose
`flower.settings.check` then adds what a deployment cannot run), experiments/compare.py
and `training.loop.train_and_evaluate` call it first, so a refused config leaves the
workdir untouched. Reads no data and computes nothing with JAX.
"""

import math
import numbers

import ml_collections

from tavit_jax import config_files, models, protocol, roster, schedule
from tavit_jax.data import tasks as tasks_lib
from tavit_jax.errors import TavitError
from tavit_jax.evaluation.tiling import BLENDS
from tavit_jax.training import protocols, state as state_lib
from tavit_jax.training.steps import CLIENT_MAPS

_MISSING = object()
_MISSING_OK = object()  # A field a hand-made config may lack (added later, default assumed).


def _get(config, key: str, default=_MISSING):
  try:
    return config_files.lookup(config, key)
  except (KeyError, AttributeError):
    if default is _MISSING:
      raise TavitError(f"config has no {key}; start from a config of configs/") from None
    return default


def _is_integer(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _integer(config, key: str, low: int = 1) -> int:
  """An integer >= `low` (1: 'a positive integer', 0: 'a non-negative integer')."""
  value = _get(config, key)
  if not _is_integer(value) or value < low:
    what = {1: "a positive integer", 0: "a non-negative integer"}.get(low, f"an integer >= {low}")
    raise TavitError(f"{key} must be {what}, not {value!r}")
  return int(value)


def _number(config, key: str, low: float, high: float = math.inf, *, low_open: bool = False,
            high_open: bool = False, what: str = "") -> float:
  """A finite number in the interval [low, high] (an end open when asked)."""
  value = _get(config, key)
  fits = (_is_number(value) and math.isfinite(value)
          and (value > low if low_open else value >= low)
          and (value < high if high_open else value <= high))
  if not fits:
    if not what:
      what = (f"a finite number in {'(' if low_open else '['}{low:g}, {high:g}"
              f"{')' if high_open else ']'}" if math.isfinite(high) else
              f"a finite number {'>' if low_open else '>='} {low:g}")
    raise TavitError(f"{key} must be {what}, not {value!r}")
  return float(value)


def _boolean(config, key: str, default=_MISSING) -> None:
  value = _get(config, key, default)
  if not isinstance(value, bool):
    raise TavitError(f"{key} must be True or False, not {value!r}")


def _choice(config, key: str, choices, default=_MISSING) -> str:
  value = _get(config, key, default)
  if value not in choices:
    raise TavitError(f"{key} must be one of {tuple(choices)}, not {value!r}")
  return value


def _clients(config) -> list[str]:
  clients = _get(config, "clients")
  if isinstance(clients, str) or not isinstance(clients, (tuple, list)):
    raise TavitError(f"clients must be a tuple of task names, one per client, not {clients!r}")
  if not clients:
    raise TavitError(f"clients must name at least one client (a task each, from "
                     f"{', '.join(tasks_lib.TASKS)}), not {tuple(clients)!r}")
  unknown = [c for c in clients if c not in tasks_lib.TASKS]
  if unknown:
    raise TavitError(f"clients: unknown task {unknown[0]!r}; known: {', '.join(tasks_lib.TASKS)}")
  return list(clients)


def _data(config) -> None:
  suite = _choice(config, "data.suite", tuple(tasks_lib.SUITES))
  data_dir = _get(config, "data.data_dir", None)
  if data_dir is not None and not isinstance(data_dir, str):
    raise TavitError(f"data.data_dir must be a folder or None, not {data_dir!r}")
  for key in ("data.batch_size", "data.patch_size", "data.patches_per_image"):
    _integer(config, key)
  _integer(config, "data.read_threads", low=0)
  _integer(config, "data.workers", low=0)
  for task in dict.fromkeys(_get(config, "clients")):
    tasks_lib.task_data(task, suite)
  tasks_lib.check_eval_split(_get(config, "data.eval_split", "test"), suite)
  if _get(config, "data.train_images", _MISSING_OK) is not _MISSING_OK:
    images = _integer(config, "data.train_images", low=0)
    clients = list(_get(config, "clients"))
    most = max(dict.fromkeys(clients), key=clients.count)
    if 0 < images < clients.count(most):
      raise TavitError(f"data.train_images={images} is fewer than the {clients.count(most)} "
                       f"clients of {most}, which share its images (0: all of them)")


def _model(config, num_tasks: int) -> None:
  for key in ("dim", "groups", "attn_heads", "attn_head_dim", "body_layers", "body_heads",
              "body_mlp_dim"):
    _integer(config, f"model.{key}")
  mults = _get(config, "model.dim_mults")
  if (not isinstance(mults, (tuple, list)) or not mults
      or not all(_is_integer(m) and m >= 1 for m in mults)):
    raise TavitError(f"model.dim_mults must be a non-empty tuple of positive integers, "
                     f"not {mults!r}")
  _number(config, "model.body_dropout", 0.0, 1.0, high_open=True)
  _boolean(config, "model.residual")
  for key in ("full_res_skip", "mask_token"):
    _boolean(config, f"model.{key}", False)
  for key in ("feature_clip", "feature_noise"):
    value = _get(config, f"model.{key}", 0.0)
    if not _is_number(value):
      raise TavitError(f"model.{key} must be a number, not {value!r}")
  model = config.model
  dim, groups = model.dim, model.groups
  bad = [dim * m for m in mults if (dim * m) % groups]
  if bad:
    raise TavitError(f"model.groups={groups} must divide every width model.dim × model.dim_mults "
                     f"({', '.join(str(dim * m) for m in mults)})")
  width = dim * mults[-1]
  if width % model.body_heads:
    raise TavitError(f"model.body_heads={model.body_heads} must divide the token width "
                     f"{width} (model.dim × model.dim_mults[-1])")
  # Names (time_conditioning, pos_emb, dtype, neck), the patch size's multiple and the f_H
  # defence: the model's own checks.
  models.build(model, config.data.patch_size)
  if model.get("neck", "none") == "sca_mtl":
    neck_tasks = _integer(config, "model.neck_tasks") if "neck_tasks" in model else 4
    if neck_tasks < num_tasks:
      raise TavitError(f"model.neck_tasks={neck_tasks} is fewer than the {num_tasks} tasks of "
                       f"clients")


def _train(config, clients: list[str]) -> None:
  train = config.train
  _integer(config, "train.cycles")
  steps = _get(config, "train.client_phase_steps")
  if (not isinstance(steps, (tuple, list)) or not steps
      or not all(_is_integer(s) and s >= 0 for s in steps)):
    raise TavitError(f"train.client_phase_steps must be a tuple of non-negative integers (one "
                     f"for all clients or one per client), not {steps!r}")
  schedule.client_phase_steps(train, len(clients))  # One entry, or one per client.
  _integer(config, "train.server_phase_steps", low=0)
  _integer(config, "train.unify_every", low=-1)
  for key in ("client_lr", "server_lr"):
    _number(config, f"train.{key}", 0.0, low_open=True, what="a finite positive number")
  _number(config, "train.lr_hold", 0.0, 1.0)
  _number(config, "train.b1", 0.0, 1.0, high_open=True)
  _number(config, "train.b2", 0.0, 1.0, high_open=True)
  _number(config, "train.grad_clip", 0.0)
  for key in ("log_every", "checkpoint_every", "keep_checkpoints"):
    _integer(config, f"train.{key}")
  _choice(config, "train.client_map", CLIENT_MAPS)
  # What crosses the wire: protocol.py's own checks.
  protocol.wire_dtype(_get(config, "train.wire_dtype"))
  protocol.check_permutation(_get(config, "train.permute_tokens"),
                             config.model.get("pos_emb", "server"))
  protocol.check_token_keep(_number(config, "train.token_keep", 0.0, 1.0, low_open=True),
                            config.model.get("mask_token", False))
  if not _is_integer(_get(config, "train.mix_clients")):
    raise TavitError(f"train.mix_clients must be an integer, not {train.mix_clients!r}")
  if "single_round" in train:  # The single round's phase lengths and DINO settings.
    for key in ("local_steps", "upload_batches", "dino_steps", "finetune_steps", "dino_batch",
                "prototypes"):
      _integer(config, f"train.single_round.{key}")
    _integer(config, "train.single_round.local_views", low=0)
    for key in ("global_view", "local_view"):
      _number(config, f"train.single_round.{key}", 0.0, 1.0, low_open=True)
  body_from = _get(config, "train.body_from", None)
  if body_from is not None:
    if not isinstance(body_from, str) or not body_from:
      raise TavitError(f"train.body_from must be a workdir or checkpoint folder, or None, "
                       f"not {body_from!r}")
  # train.mode and train.token_mix name a protocol; it refuses what it cannot run (e.g.
  # single_round's positions, cutmix's groups) and lays out the phases.
  chosen = protocols.select(train)
  chosen.check(config)
  phases = chosen.phases(train, len(clients))
  if not phases:
    raise TavitError("train.client_phase_steps and train.server_phase_steps are all 0: the "
                     "run would have no step")
  state_lib.optimizers(train, phases)  # train.lr_decay.


def _eval(config) -> None:
  patch_size = config.data.patch_size
  stride = _get(config, "eval.stride")
  if not _is_integer(stride) or not 1 <= stride <= patch_size:
    raise TavitError(f"eval.stride must be an integer in [1, {patch_size}] (data.patch_size), "
                     f"not {stride!r}")
  _integer(config, "eval.batch_size")
  _choice(config, "eval.blend", BLENDS)
  _integer(config, "eval.max_images", low=0)
  schedule.evaluated_phases([], _get(config, "eval.every"))


def _flower(config) -> None:
  """The numbers of the `flower` section (tavit-flower; flower.settings.check its names)."""
  if "flower" not in config:
    return
  for key in ("reply_timeout", "start_timeout", "poll_interval"):
    _number(config, f"flower.{key}", 0.0, low_open=True, what="a finite positive number of seconds")
  _number(config, "flower.max_wait", 0.0, what="a finite number of seconds >= 0")
  if "chunk_bytes" in config.flower:
    _integer(config, "flower.chunk_bytes", low=1)


def validate(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config` if a run can start from it; else a `TavitError` naming the first bad key."""
  if not isinstance(config, ml_collections.ConfigDict):
    raise TavitError(f"expected a config (ml_collections.ConfigDict), not {type(config).__name__}")
  seed = _get(config, "seed")
  if not _is_integer(seed) or seed < 0:
    raise TavitError(f"seed must be a non-negative integer, not {seed!r}")
  clients = _clients(config)
  _data(config)
  _model(config, len(roster.first_of_each_task(clients)))
  _train(config, clients)
  _eval(config)
  _flower(config)
  return config
