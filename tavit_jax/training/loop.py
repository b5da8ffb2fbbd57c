"""The training loop: step through the protocol's phases, evaluate after each, checkpoint.

Importable from notebooks: `train_and_evaluate(config, workdir)`. Rerunning on the same
workdir resumes from the latest checkpoint (state, step, phase, RNG, data position).
"""

import dataclasses
import json
import os
from typing import Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm import tqdm

from tavit_jax import config_files, files, models, roster, schedule as schedule_lib
from tavit_jax.data import pipeline
from tavit_jax.errors import TavitError
from tavit_jax.evaluation import report
from tavit_jax.training import distributed, protocols
from tavit_jax.training import state as state_lib, steps as steps_lib
from tavit_jax.training.step_parts import StepOptions
from tavit_jax.training import body_source, config_check
from tavit_jax.training.checkpoints import Checkpoints
from tavit_jax.training.evaluate import evaluate_clients
from tavit_jax.training.writers import MetricWriter

# Config entries a workdir's checkpoints depend on (lr_decay: the optimizer states' structure);
# others (learning rates, eval) may change on resume.
# train_images: the data iterator's state; body_from: where the body started.
_STRUCTURAL = ("seed", "clients", "model", "data.patch_size", "data.batch_size", "train.mode",
               "train.lr_decay", "train.permute_tokens", "train.token_keep", "train.token_mix",
               "train.mix_clients", "data.train_images", "train.body_from")
# Fields added to config.json later, with the value every earlier run had.
_ADDED = {"train.permute_tokens": "none", "train.token_keep": 1.0, "train.token_mix": "none",
          "train.mix_clients": 2, "data.train_images": 0, "train.body_from": None}
_ADDED_TO_MODEL = {"pos_emb": "server", "mask_token": False, "feature_clip": 0.0, "feature_noise": 0.0}


class TrainingDiverged(TavitError):
  """A non-finite loss: training stops without saving the bad state."""


def _lookup(config, key: str):
  """`config`'s value at `key`; a field added later, when a hand-made config lacks it, has
  the value every earlier run had."""
  try:
    return config_files.lookup(config, key)
  except (KeyError, AttributeError):
    if key in _ADDED:
      return _ADDED[key]
    raise


def _check_workdir_config(config, workdir: str, write: bool = True) -> None:
  """Refuses to resume a workdir made with a different model, clients or data shape."""
  path = os.path.join(workdir, "config.json")
  current = {key: _lookup(config, key) for key in _STRUCTURAL}
  current = json.loads(json.dumps(current))  # Tuples as lists, like the stored copy.
  if os.path.exists(path):
    stored = {**_ADDED, **files.read_json(path)}
    stored["model"] = {**_ADDED_TO_MODEL, **stored.get("model", {})}
    changed = [key for key in _STRUCTURAL if stored.get(key) != current[key]]
    if changed:
      raise TavitError(f"{workdir} holds a run with a different {', '.join(changed)} "
                       f"(stored: {[stored.get(k) for k in changed]}); use a new --workdir")
  elif write:
    os.makedirs(workdir, exist_ok=True)
    with open(path, "w") as f:
      json.dump(current, f, indent=1)


class _Results:
  """Evaluation rows of finished phases, kept in the workdir so a resumed run reports all."""

  def __init__(self, workdir: str, footer: list[str]):
    self.workdir, self.footer = workdir, footer
    self.path = os.path.join(workdir, "results.json")
    self.rows = files.read_json(self.path) if os.path.exists(self.path) else []

  def record(self, phase: schedule_lib.Phase, step: int, rows: list[dict]) -> None:
    self.rows = [r for r in self.rows if r["phase"] < phase.index]
    self.rows += [{"phase": phase.index, "phase_name": phase.name, "step": step, **r} for r in rows]
    with open(self.path, "w") as f:
      json.dump(self.rows, f, indent=1)
    report.write_tables(self.rows, self.workdir, self.footer)
    report.plot_psnr(self.rows, os.path.join(self.workdir, "psnr_per_phase.png"))


def _diverged(step, phase, what: str, checkpoints: Checkpoints) -> TrainingDiverged:
  last = checkpoints.latest_step()
  kept = (f"the last good checkpoint (step {last}) is kept in {checkpoints.directory}"
          if last is not None else "no checkpoint had been written yet")
  return TrainingDiverged(
      f"training diverged at step {step} ({phase.name}): {what}; stopped without saving, "
      f"{kept}. Lower train.client_lr / train.server_lr and rerun to resume from it.")


def _step_scalars(metrics: dict, clients) -> dict[str, float]:
  """A step's metrics as named scalars: per-client losses under each client's name, the
  server's own (e.g. the DINO loss) under theirs."""
  scalars = {}
  for name, value in metrics.items():
    value = np.asarray(value)
    if name == "loss":
      scalars.update({f"train/loss/{c.name}": float(v) for c, v in zip(clients, value)})
    else:
      scalars[f"train/{name}"] = float(value)
  return scalars


def _non_finite(names: list[str], scalars: dict) -> str:
  """'loss is nan for <clients>', or the server's metric that is not finite."""
  clients = [n.rsplit("/", 1)[1] for n in names if n.startswith("train/loss/")]
  if clients:
    return f"loss is {scalars[names[0]]} for {', '.join(clients)}"
  return f"{names[0]} is {scalars[names[0]]}"


def _evaluate(steps, state, config, phase, step, primary, results, writer, workdir, say) -> None:
  """After a phase: every task's test sets, recorded with a sample grid (primary only)."""
  every_client = distributed.gather(state)  # Across processes: all of it, everywhere.
  if not primary:
    return
  rows, samples = evaluate_clients(steps, every_client, list(config.clients), config)
  writer.write_scalars(step, {f"eval/{r['task']}/{r['eval_set']}/{k}": v for r in rows
                              for k, v in r.items() if "/" in k})
  results.record(phase, step, rows)
  report.save_sample_grid(samples, os.path.join(workdir, "samples", f"phase_{phase.index:02d}.png"))
  say(f"{phase.name}: {report.psnr_summary(rows)}")


@dataclasses.dataclass
class _Run:
  """What the loop steps with, built once from the config: the protocol the table chose,
  its phases and compiled steps, the initial (sharded) state, and whose data this process
  reads."""

  clients: list
  protocol: protocols.Protocol
  phases: list
  per_client_steps: np.ndarray
  model: models.Model
  state: dict
  steps: object
  client_sharding: object
  local: np.ndarray

  def step(self, phase, step: int, state, data):
    """One step of `phase` at global `step`: the client step for a phase whose clients learn
    (with who is still active), else the step the phase's kind names."""
    num_clients = len(self.clients)
    batch = (distributed.to_global(next(data), self.client_sharding, num_clients)
             if phase.reads_data else None)
    if phase.kind in schedule_lib.CLIENT_KINDS:
      active = schedule_lib.active_clients(phase, step, self.per_client_steps)
      active = distributed.to_global(active[self.local], self.client_sharding, num_clients)
      return self.steps.client(state, batch, active)
    return getattr(self.steps, phase.kind)(state, batch)


def _with_body(state: dict, body) -> dict:
  """`state` with the server's body replaced by `body`, placed as the old one was."""
  placed = jax.tree_util.tree_map(lambda new, old: jax.device_put(new, old.sharding), body,
                                  state["server"]["body"])
  return {**state, "server": {**state["server"], "body": placed}}


def _setup(config) -> _Run:
  client_tasks = list(config.clients)
  num_clients = len(client_tasks)
  chosen = protocols.select(config.train)  # Its check ran in config_check.validate.
  phases = chosen.phases(config.train, num_clients)
  client_map = steps_lib.resolve_client_map(config.train.client_map)
  distributed.check_clients_fit(num_clients, client_map)
  model = models.build(config.model, config.data.patch_size)
  client_tx, server_tx = state_lib.optimizers(config.train, phases)
  state = state_lib.init_state(model, client_tasks, client_tx, server_tx,
                               jax.random.PRNGKey(config.seed))
  state = chosen.init_state(model, config, state, server_tx)
  shardings = steps_lib.state_shardings(state, steps_lib.make_mesh(), num_clients, client_map)
  steps = chosen.make_steps(model, config, client_tx, server_tx, roster.task_ids(client_tasks),
                            shardings, phases, StepOptions.from_config(config, client_map))
  client_sharding = jax.tree_util.tree_leaves(shardings["clients"])[0]
  return _Run(roster.assign_clients(client_tasks), chosen, phases,
              schedule_lib.client_phase_steps(config.train, num_clients), model,
              jax.device_put(state, shardings), steps, client_sharding,
              distributed.local_clients(client_sharding, num_clients))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       max_steps: Optional[int] = None) -> list[dict]:
  """Runs (or resumes) the schedule of `config` in `workdir`; returns the evaluation rows.

  `max_steps` stops after that many steps of this call (checkpointed), e.g. to train a
  Colab session in chunks.
  """
  config_check.validate(config)  # The whole config, before the workdir is touched.
  workdir = files.resolve(workdir)
  primary = distributed.is_primary()
  say = tqdm.write if primary else (lambda *_: None)
  _check_workdir_config(config, workdir, write=primary)
  run = _setup(config)
  phases, steps, state, local = run.phases, run.steps, run.state, run.local
  evaluated = schedule_lib.evaluated_phases(phases, config.eval.every)
  data = iter(pipeline.clients_dataset_from_config(config, only=local))
  checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"), keep=config.train.keep_checkpoints)
  if checkpoints.latest_step() is not None:
    state, data_state = checkpoints.restore(checkpoints.latest_step(), state)
    data.set_state(distributed.unpack_data_state(data_state))
  elif config.train.get("body_from"):  # A fresh run whose body another run trained.
    state = _with_body(state, body_source.load_body(config.train.body_from, state["server"]["body"]))
  step = start_step = int(state["step"])
  results = _Results(workdir, run.protocol.communication_table(config, run.model, phases))
  writer = MetricWriter(os.path.join(workdir, "tensorboard"), enabled=primary)
  all_finite = jax.jit(lambda tree: jnp.all(jnp.stack(
      [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)])))

  def check_finite(step, phase, state):
    """Before every evaluation and save: a diverged run keeps its last good checkpoint."""
    if not all_finite(state):
      raise _diverged(step, phase, "parameters are not finite", checkpoints)

  if step:
    say(f"Resuming {workdir} at step {step} of {phases[-1].end}.")
  if results.footer:
    say("\n".join(results.footer) + "\n")
  try:
    for phase in phases:
      if phase.end <= step:
        continue
      with tqdm(total=phase.steps, initial=step - phase.start, desc=phase.name, unit="step",
                disable=not primary) as bar:
        while step < phase.end:
          state, metrics = run.step(phase, step, state, data)
          step += 1
          scalars = _step_scalars(metrics, run.clients)
          bad = [name for name, value in scalars.items() if not np.isfinite(value)]
          if bad:
            raise _diverged(step, phase, _non_finite(bad, scalars), checkpoints)
          bar.update(1)
          if scalars:
            bar.set_postfix(loss=f"{np.mean(list(scalars.values())):.4f}")
          if step % config.train.log_every == 0 or step == phase.end:
            writer.write_scalars(step, scalars)
          if schedule_lib.unifies_after(phase, step, config.train.unify_every):
            state = steps.unify(state)
          stopping = max_steps is not None and step - start_step >= max_steps
          if step < phase.end and (stopping or step % config.train.checkpoint_every == 0):
            check_finite(step, phase, state)
            checkpoints.save(step, state, distributed.pack_data_states(data.get_state()))
          if stopping and step < phase.end:
            return results.rows
      check_finite(step, phase, state)
      if phase.index in evaluated:
        _evaluate(steps, state, config, phase, step, primary, results, writer, workdir, say)
      checkpoints.save(step, state, distributed.pack_data_states(data.get_state()))
      if max_steps is not None and step - start_step >= max_steps:
        return results.rows
    if primary:
      say("\n" + report.write_tables(results.rows, workdir, results.footer))
  finally:
    writer.close()
    checkpoints.close()
  return results.rows
