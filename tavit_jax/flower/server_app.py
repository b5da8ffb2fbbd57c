"""The ServerApp: owns the body, its optimizer, the phase/cycle schedule and FedAvg.

Run config (strings, see `tavit_jax.flower.launch.write_app`):
  config     path of the experiment config file (configs/flower_tiny.py)
  overrides  JSON of flat config overrides, e.g. '{"train.cycles": 1}'
  workdir    the server's folder: checkpoints, events/steps/wire logs

Rerunning on the same workdir resumes from the latest checkpoint. Clients resume from
their own; a step a client had already applied is not applied twice. Alternating TAViT
runs here (`_Trainer`); the single round in single_round_server.py.
"""

import logging
import sys
import time

import numpy as np
from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from tavit_jax import fedavg, roster, schedule as schedule_lib
from tavit_jax.errors import TavitError
from tavit_jax.evaluation import communication
from tavit_jax.flower import settings, single_round_server
from tavit_jax.flower.exchanges import (Prefetch, get_weights_task, key_list, set_weights_task,
                                        step_task)
from tavit_jax.flower.fleet import Fleet
from tavit_jax.flower.records import log, Records
from tavit_jax.flower.server import BodyServer
from tavit_jax.training import protocols

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
  if not log.handlers:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("tavit %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # Flower's root handler would print every line twice.
  run_config = context.run_config
  config = settings.load_config(str(run_config["config"]),
                                settings.parse_overrides(str(run_config.get("overrides", ""))))
  train(grid, config, str(run_config["workdir"]))


class _Trainer:
  """The schedule of `train.loop`, with messages instead of a fused step."""

  def __init__(self, grid: Grid, config, workdir: str):
    self.config = config
    self.records = Records(workdir)
    self.server = BodyServer(config, workdir)
    self.fleet = Fleet(grid, config, self.records)
    self.num_clients = len(config.clients)
    self.ids = roster.task_ids(list(config.clients))
    self.phases = protocols.make_schedule(config.train, self.num_clients)
    self.per_client = schedule_lib.client_phase_steps(config.train, self.num_clients)
    self.prefetched: dict = {}
    # What each client should send and receive per step of each phase (float32 on the wire).
    self.predicted_bytes = communication.bytes_per_step(
        self.server.model, config.data.patch_size, config.data.batch_size,
        token_keep=config.train.token_keep)

  def _unifies_after(self, phase, step: int) -> bool:
    return schedule_lib.unifies_after(phase, step, self.config.train.unify_every)

  def _phase_at(self, step: int):
    return next((p for p in self.phases if p.start <= step < p.end), None)

  def _active(self, phase, step: int) -> list[int]:
    if phase.kind == "server":
      return list(range(self.num_clients))
    active = schedule_lib.active_clients(phase, step, self.per_client)
    return [int(k) for k in np.flatnonzero(active)]

  def _prefetch(self, phase, step: int, k: int):
    """f_H of step + 1 may ride on step's last reply unless the head changes in between."""
    nxt = self._phase_at(step + 1)
    if nxt is None or k not in self._active(nxt, step + 1):
      return None
    if self._unifies_after(phase, step + 1) and roster.shares_task(self.ids)[k]:
      return None
    return Prefetch(step + 1, nxt.kind, key_list(self.server.next_keys()[k, 0]))

  def run_step(self, phase, step: int) -> None:
    started = time.time()
    self.fleet.rediscover()
    keys = self.server.begin_step()
    active = self._active(phase, step)
    tasks = {k: step_task(self.server, k, step, phase.kind, keys, self.prefetched,
                          self._prefetch(phase, step, k)) for k in active}
    results = self.fleet.run(step, tasks, next_step=step + 1)
    done = {k: r for k, r in results.items() if r is not None}
    if phase.kind == "server":
      if done:
        self.server.apply([done[k]["body_grad"] for k in sorted(done)])
      else:
        self.records.event("no_gradient", f"step {step}: no client contributed; the body did "
                           "not step", logging.WARNING, step=step)
    sizes = self.predicted_bytes
    predicted = {k: {"up": sizes[f"{phase.kind}_phase_up"],
                     "down": sizes[f"{phase.kind}_phase_down"]} for k in done}
    self.records.flush_wire(step, phase.kind, predicted)
    self.records.step(step=step, phase=phase.kind, cycle=phase.cycle, seconds=time.time() - started,
                      losses={str(k): r["loss"] for k, r in done.items()},
                      skipped=sorted(set(active) - set(done)))

  def unify(self, step: int) -> None:
    """FedAvg of heads and tails among same-task clients (fedavg.py, as in-process)."""
    if self.server.meta["unified"] >= step:
      return
    groups = {int(self.ids[ks[0]]): [int(k) for k in ks]
              for ks in roster.task_groups(self.ids) if len(ks) > 1}
    if not groups:
      self.server.finish_unify(step)
      return
    label = f"unify@{step}"
    pending = self.server.pending_means(step)
    if pending is None:
      members = [k for ks in groups.values() for k in ks]
      weights = self.fleet.run(label, {k: get_weights_task(step) for k in members})
      for task, ks in groups.items():
        present = [k for k in ks if k in weights]
        if len(present) < len(ks):
          self.records.event("partial_unify", f"FedAvg at step {step}: task {task} averages "
                             f"clients {present} of {ks}", logging.WARNING, step=step)
      means = {f"{task}:{name}": value
               for task, named in fedavg.task_means(weights, self.ids).items()
               for name, value in named.items()}
      self.server.keep_means(step, sorted(groups), means)
    else:
      _, means = pending
    by_task = {}
    for key, value in means.items():
      task, name = key.split(":", 1)
      by_task.setdefault(int(task), {})[name] = value
    tasks = {k: set_weights_task(step, by_task[t]) for t, ks in groups.items() if t in by_task
             for k in ks}
    missing = sorted(set(tasks) - set(self.fleet.run(label, tasks)))
    self.records.flush_wire(label, "unify", {})
    if missing and self.config.flower.on_client_failure == "wait":  # So they refused it.
      raise TavitError(f"FedAvg at step {step}: clients {missing} refused the mean (see "
                       "events.jsonl); a client runs other code or another model")
    if missing:
      self.records.event("partial_unify", f"FedAvg at step {step}: clients {missing} did not "
                         "take the mean", logging.WARNING, step=step, clients=missing)
    self.server.finish_unify(step)

  def train(self) -> None:
    step = self.server.step
    if step:
      self.records.event("resumed_server", f"server resumed from its checkpoint at step {step}",
                         step=step)
    self.fleet.connect()
    for phase in self.phases:
      if phase.end < step or (phase.end == step and not self._unifies_after(phase, step)):
        continue
      while step < phase.end:
        self.run_step(phase, step)
        step += 1
        if self._unifies_after(phase, step):
          self.unify(step)
        if step < phase.end and step % self.config.train.checkpoint_every == 0:
          self.server.save()
      if self._unifies_after(phase, step):
        self.unify(step)  # A no-op unless a crash came between the last step and its FedAvg.
      self.server.save()
      self.records.event("phase_end", f"{phase.name} done at step {step}", step=step,
                         phase=phase.name)
    self.records.event("finished", f"finished at step {step}", step=step)


def _alternating(grid: Grid, config, workdir: str) -> None:
  trainer = _Trainer(grid, config, workdir)
  try:
    trainer.train()
  finally:
    trainer.records.close()


# The protocols tavit-flower deploys (settings.check refuses the others), by name.
SERVERS = {"alternating": _alternating, "single_round": single_round_server.train}


def train(grid: Grid, config, workdir: str) -> None:
  """Runs (or resumes) the schedule of `config` with the clients connected to `grid`."""
  SERVERS[protocols.select(config.train).name](grid, config, workdir)
