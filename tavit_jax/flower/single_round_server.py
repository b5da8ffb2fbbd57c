"""The ServerApp's side of the single round (docs/design.md §4.4, §7): each client's one
upload, self-distillation of the body on it, the body sent once, and each client's finish.

The clients train on their own (single_round_client.py); the server only asks. Per client:
`upload` requests for the row ranges of its token sets that the store lacks (several when
one message would pass `flower.chunk_bytes`; held by the client until its local phase is
done), then `download` requests carrying the body's flat vector in ranges, then `status`
requests, each held by the client until it has finished fine-tuning or `wait` has passed.
Between the two, the in-process single round's own compiled DINO step trains the body on
what the store holds, from the same initial state and RNG, checkpointed like any run.

Faults: the store keeps every chunk on disk, and the checkpoint taken before the first DINO
step records whose uploads it uses, so a restarted server asks no client again; a client
that does not answer is handled by `flower.on_client_failure` (fleet.py); a client that never
uploaded is left out of the distillation with one line (`proceed`), or stops the run once
`max_wait` has passed (`wait`); a refused chunk (upload_store.py) leaves the store unchanged.
"""

import logging
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flwr.serverapp import Grid
from jax.flatten_util import ravel_pytree

from tavit_jax import models, protocol
from tavit_jax.errors import TavitError
from tavit_jax.evaluation import communication
from tavit_jax.flower import chunks
from tavit_jax.flower.fleet import Fleet, Rejected
from tavit_jax.flower.records import Records
from tavit_jax.flower.server import server_init
from tavit_jax.flower.upload_store import UploadStore
from tavit_jax.training import protocols, state as state_lib
from tavit_jax.training.checkpoints import Checkpoints
from tavit_jax.training.protocols import single_round


def initial_state(model, config, server_tx, phases) -> dict:
  """The in-process run's server state at the first DINO step, without the uploads: the
  body and optimizer from the seed, the DINO state (`single_round.init`), the RNG replayed
  through the local and upload phases."""
  num_clients = len(config.clients)
  server = server_init(model, server_tx, config.seed)
  advance = jax.jit(single_round.next_rng, static_argnums=(0, 2))
  rng = server["rng"]
  for phase in phases:
    if phase.kind == "dino":
      break
    for _ in range(phase.steps):
      rng = advance(phase.kind, rng, num_clients)[0]
  state = {"server": {"body": server["body"], "opt": server["opt"]}, "rng": rng,
           "step": jnp.asarray(phase.start, jnp.int32)}
  state = single_round.init(model, state, config, server_tx, jax.random.PRNGKey(config.seed + 1))
  state["server"].pop("uploaded")
  return state


class SingleRoundServer:

  def __init__(self, grid: Grid, config, workdir: str):
    self.config = config
    self.num_clients = len(config.clients)
    self.records = Records(workdir)
    self.fleet = Fleet(grid, config, self.records)
    self.model = models.build(config.model, config.data.patch_size)
    self.phases = protocols.make_schedule(config.train, self.num_clients)
    self.dino = next(p for p in self.phases if p.kind == "dino")
    _, server_tx = state_lib.optimizers(config.train, self.phases)
    self.dino_step = single_round.make_steps(self.model, config, server_tx, self.phases, None)[1]
    side, _, width = self.model.token_shape
    rows = config.train.single_round.upload_batches * config.data.batch_size
    self.chunk_bytes = int(config.flower.chunk_bytes)
    self.store = UploadStore(os.path.join(workdir, "uploads"), self.num_clients,
                             (rows, side * side, width), self.chunk_bytes)
    self.predicted = communication.single_round_bytes(self.model, config, "float32")
    self.hold = max(1.0, config.flower.reply_timeout / 3)  # Seconds a client may hold a reply.
    self.checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"),
                                   keep=config.train.keep_checkpoints)
    fresh = lambda: initial_state(self.model, config, server_tx, self.phases)
    latest = self.checkpoints.latest_step()
    if latest is None:
      self.state, self.present = fresh(), None
    else:  # Shapes only: nothing is initialised to resume.
      self.state, meta = self.checkpoints.restore(latest, jax.eval_shape(fresh))
      self.present = meta["present"]

  @property
  def step(self) -> int:
    return int(self.state["step"])

  def _save(self, state) -> None:
    state = dict(state, server={k: v for k, v in state["server"].items() if k != "uploaded"})
    self.checkpoints.save(int(state["step"]), state, {"present": self.present})

  # Upload.
  def _upload_task(self, k: int):
    def task(fresh: bool):
      del fresh  # The store holds what arrived before; only what it lacks is asked for.
      while self.store.missing(k):
        start, stop = self.store.missing(k)[0]
        config, arrays = yield ("upload", {"start": start, "stop": stop, "wait": self.hold}, {})
        if config.get("error"):
          raise Rejected(f"client {k} failed before uploading: {config['error']}")
        if config.get("ready"):
          self.store.add(k, int(config["start"]), int(config["stop"]), arrays.get("tokens"))
      return True

    return task

  def collect(self) -> None:
    """Every client's upload into the store, unless the store has it already."""
    lacking = [k for k in range(self.num_clients) if self.store.missing(k)]
    if lacking:
      chunks_each = len(self.store.ranges)
      self.records.event("upload", f"asking clients {lacking} for their token sets "
                         f"({chunks_each} message{'s' if chunks_each > 1 else ''} each)",
                         clients=lacking, chunks=chunks_each)
      done = self.fleet.run("upload", {k: self._upload_task(k) for k in lacking})
      whole = {k: {"up": self.predicted["upload_bytes"], "down": 0} for k in done}
      self.records.flush_wire("upload", "upload", whole)
    self.present = self.store.complete_clients()
    absent = sorted(set(range(self.num_clients)) - set(self.present))
    if not self.present:
      raise TavitError("no client uploaded its token sets; there is nothing to self-distil")
    if absent:
      self.records.event("no_upload", f"clients {absent} did not upload; self-distillation "
                         f"proceeds on the token sets of clients {self.present}",
                         logging.WARNING, clients=absent)
    self._save(self.state)  # Whose uploads count, before the first DINO step.

  # Self-distillation.
  def distil(self) -> None:
    tokens = jnp.asarray(self.store.tokens(self.present))
    state = dict(self.state, server=dict(self.state["server"], uploaded=tokens))
    every = self.config.train.checkpoint_every
    for step in range(self.step, self.dino.end):
      started = time.time()
      state, metrics = self.dino_step(state)
      loss = float(metrics["dino_loss"])
      if not np.isfinite(loss):
        raise TavitError(f"self-distillation diverged at step {step} (DINO loss {loss}); the "
                         "last checkpoint is kept: lower train.server_lr and rerun")
      self.records.step(step=step, phase="dino", cycle=1, seconds=time.time() - started,
                        losses={"dino": loss}, skipped=[])
      if step + 1 == self.dino.end or (step + 1) % every == 0:
        self._save(state)
    self.state = dict(state, server={k: v for k, v in state["server"].items() if k != "uploaded"})
    self.records.event("phase_end", f"self-distillation done at step {self.dino.end}",
                       step=self.dino.end, phase=self.dino.name)

  # Download and fine-tuning.
  def _download_task(self, vector: np.ndarray, ranges: list):
    def task(fresh: bool):
      del fresh  # A client that restarted lost its partial body: send it all again.
      for start, stop in ranges:
        config, _ = yield ("download", {"start": start, "stop": stop, "size": vector.size,
                                        "chunk_bytes": self.chunk_bytes},
                           {"body": vector[start:stop]})
        if config.get("done"):
          return "had it"
      return "sent"

    return task

  def _finish_task(self, k: int):
    def task(fresh: bool):
      del fresh
      while True:
        config, _ = yield ("status", {"wait": self.hold}, {})
        if config.get("error"):
          raise Rejected(f"client {k} failed while fine-tuning: {config['error']}")
        if config.get("finished"):
          self.records.event("client_finished", f"client {k} finished fine-tuning at step "
                             f"{config.get('step')}", client=k, step=config.get("step"))
          return True

    return task

  def send_body(self) -> None:
    vector = np.asarray(ravel_pytree(self.state["server"]["body"])[0], np.float32)
    ranges = chunks.array_ranges(vector.shape, np.float32, self.chunk_bytes)
    clients = range(self.num_clients)
    sent = self.fleet.run("download", {k: self._download_task(vector, ranges) for k in clients})
    self.records.flush_wire("download", "download", {
        k: {"up": 0, "down": self.predicted["download_bytes"]} for k, how in sent.items()
        if how == "sent"})
    self.records.event("download", f"body sent to clients {sorted(sent)} "
                       f"({len(ranges)} message{'s' if len(ranges) > 1 else ''} each)",
                       clients=sorted(sent), chunks=len(ranges))
    finished = self.fleet.run("finish", {k: self._finish_task(k) for k in sent})
    self.records.flush_wire("finish", "status", {})
    unfinished = sorted(set(clients) - set(finished))
    if unfinished:
      self.records.event("unfinished", f"clients {unfinished} did not report finishing",
                         logging.WARNING, clients=unfinished)

  def train(self) -> None:
    if self.present is not None:
      self.records.event("resumed_server", f"server resumed from its checkpoint at step "
                         f"{self.step}; uploads of clients {self.present} kept", step=self.step)
    self.fleet.connect()
    if self.present is None:
      self.collect()
    if self.step < self.dino.end:
      self.distil()
    self.send_body()
    self.records.event("finished", f"finished at step {self.phases[-1].end}",
                       step=self.phases[-1].end)


def train(grid: Grid, config, workdir: str) -> None:
  """Runs (or resumes) the single round of `config` with the clients connected to `grid`."""
  server = SingleRoundServer(grid, config, workdir)
  try:
    server.train()
  finally:
    server.records.close()
    server.checkpoints.close()
