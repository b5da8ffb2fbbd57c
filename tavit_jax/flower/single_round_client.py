"""One client of the single round over Flower (docs/design.md §4.4, §7): local phase, one
upload, fine-tuning, in the client's own process.

The in-process single round's functions, one client's share: the local and fine-tuning
steps are the in-process client step (`step_parts.client_one`) through this client's copy of
the body (first the public initialisation, every party builds it from the seed; then the
one the server sends); the upload is `single_round.upload_tokens` with the secret kept in
this client's workdir; the keys are the run's one RNG stream, replayed from the seed. So a
client given the in-process run's `simulated_secret` ends where that run's client ends.

A thread trains as soon as the process starts, with no message. The ClientApp relays the
server's few requests: hello, upload (rows a:b of the token sets), download (rows a:b of
the flat body) and status (finished?). One that asks for what is not ready yet is held up to
its `wait` seconds (a long poll), so the server hears of progress without a stream of
polls. Checkpoints every `train.checkpoint_every` steps, at each phase's end, with the
upload (upload.npy) and once the body is whole: a killed client resumes from the last.
After fine-tuning, the first client of each task scores its task's evaluation sets as
`tavit-train` does (results.json, results.md and a sample grid in its workdir) before it
reports itself finished; `tavit-flower local` gathers these into the run's table.
"""

import functools
import os
import threading

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from tavit_jax import files, models, protocol, roster
from tavit_jax.data import pipeline
from tavit_jax.evaluation import report
from tavit_jax.flower import chunks, settings
from tavit_jax.flower.worker import client_init, log, permutation_secret, ProtocolError
from tavit_jax.training import protocols, state as state_lib, step_parts
from tavit_jax.training.checkpoints import Checkpoints
from tavit_jax.training.evaluate import evaluate_task
from tavit_jax.training.protocols import single_round


def key_stream(seed: int, phases, num_clients: int) -> list:
  """Per global step, every client's (timestep key, dropout key), or None for a DINO step:
  the in-process run's RNG, replayed."""
  advance = jax.jit(single_round.next_rng, static_argnums=(0, 2))
  rng = protocol.initial_keys(jax.random.PRNGKey(seed))[2]
  keys = []
  for phase in phases:
    for _ in range(phase.steps):
      rng, step_keys = advance(phase.kind, rng, num_clients)
      keys.append(None if step_keys is None else np.asarray(step_keys))
  return keys


class SingleRoundWorker:
  """Client `index` of `config.clients` in the single round, with its state in `workdir`."""

  def __init__(self, config, index: int, workdir: str):
    tasks = list(config.clients)
    if not 0 <= index < len(tasks):
      raise ValueError(f"client index {index} is not in [0, {len(tasks)})")
    self.config, self.index, self.workdir = config, index, workdir
    self.client = roster.assign_clients(tasks)[index]
    self.model = models.build(config.model, config.data.patch_size)
    self.phases = protocols.make_schedule(config.train, len(tasks))
    self.bounds = {p.kind: (p.start, p.end) for p in self.phases}
    self.keys = key_stream(config.seed, self.phases, len(tasks))
    client_tx, server_tx = state_lib.optimizers(config.train, self.phases)
    self.task = int(roster.task_ids(tasks)[index])
    parts = step_parts.make_parts(self.model, client_tx, server_tx, roster.task_ids(tasks),
                                  step_parts.StepOptions.from_config(config, "loop"))
    self._client_step = jax.jit(parts.client_one)
    self._restore = jax.jit(parts.restore)
    # Same-task clients fine-tune alike; tavit-train scores the first of each task.
    self.evaluates = roster.first_of_each_task(tasks)[self.client.task] == index
    self.results_path = os.path.join(workdir, "results.json")
    self._upload = jax.jit(functools.partial(single_round.upload_tokens, self.model))
    self.secret = single_round.secret_key(permutation_secret(workdir))
    data = config.data
    self.data = iter(pipeline.train_dataset(
        self.client, suite=data.suite, batch_size=data.batch_size, patch_size=data.patch_size,
        patches_per_image=data.patches_per_image, seed=config.seed, read_threads=data.read_threads,
        data_dir=data.data_dir))
    body_rng = protocol.initial_keys(jax.random.PRNGKey(config.seed))[0]
    fresh = lambda: dict(client_init(self.model, tuple(tasks), index, client_tx, config.seed),
                         body=self.model.init_body(body_rng))
    self.checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"), keep=2)
    # Next global step; whether the body came; checkpoints written.
    self.meta = {"step": 0, "body": False, "commit": 0}
    latest = self.checkpoints.latest_step()
    if latest is None:
      self.state = jax.jit(fresh)()
    else:
      self.state, saved = self.checkpoints.restore(latest, jax.eval_shape(fresh))
      self.meta = saved["meta"]
      self.data.set_state(saved["data"])
      log.info("client %d resumed from its checkpoint at step %d", index, self.meta["step"])
    self.upload_path = os.path.join(workdir, "upload.npy")
    self.uploaded = None  # The token sets, once computed.
    self._unravel = ravel_pytree(self.state["body"])[1]
    self._body = None  # The body's flat vector as it arrives (chunks.Assembly).
    self.lock = threading.Lock()
    self.changed = threading.Condition(self.lock)  # Notified when the phase moves on.
    self.body_ready = threading.Event()
    if self.meta["body"]:
      self.body_ready.set()
    self.finished = self.meta["step"] >= self.bounds["finetune"][1] and self._evaluated()
    self.error = None

  # Training, in a thread of its own.
  def _save(self) -> None:
    """Under the lock: state, data position and meta, durable before any acknowledgement."""
    self.meta = dict(self.meta, commit=self.meta["commit"] + 1)
    self.checkpoints.save(self.meta["commit"], self.state,
                          {"data": self.data.get_state(), "meta": self.meta})

  def _train(self, kind: str) -> None:
    start, end = self.bounds[kind]
    every = self.config.train.checkpoint_every
    for step in range(max(self.meta["step"], start), end):
      with self.lock:  # Only this thread steps; the lock keeps a save's state and data in step.
        batch = next(self.data)
      s = self.state
      head, tail, opt, _ = self._client_step(s["head"], s["tail"], s["opt"], s["body"],
                                             batch["input"], batch["target"],
                                             self.keys[step][self.index], True, self.task)
      jax.block_until_ready(head)
      with self.lock:
        self.state = dict(s, head=head, tail=tail, opt=opt)
        self.meta = dict(self.meta, step=step + 1)
        if step + 1 == end or (step + 1) % every == 0:
          self._save()

  def _prepare_upload(self) -> None:
    """The token sets of the upload phase's batches, from the head as the local phase left it."""
    start, end = self.bounds["upload"]
    if self.meta["step"] >= end and os.path.exists(self.upload_path):
      self.uploaded = np.load(self.upload_path)
    else:
      with self.lock:
        batches = [next(self.data) for _ in range(start, end)]
      tokens = [self._upload(self.state["head"], b["input"], self.keys[step][self.index, 0],
                             self.secret, jnp.int32(step))
                for step, b in zip(range(start, end), batches)]
      uploaded = np.concatenate([np.asarray(t, np.float32) for t in tokens])
      with open(self.upload_path + ".tmp", "wb") as f:
        np.save(f, uploaded)
      os.replace(self.upload_path + ".tmp", self.upload_path)
      with self.lock:
        self.meta = dict(self.meta, step=end)
        self._save()
      self.uploaded = uploaded
    with self.changed:
      self.changed.notify_all()
    log.info("client %d: upload ready (%d token sets)", self.index, len(self.uploaded))

  def _evaluated(self) -> bool:
    return not self.evaluates or os.path.exists(self.results_path)

  def _evaluate(self) -> None:
    """The task's evaluation sets after fine-tuning, as tavit-train's last evaluation."""
    phase = next(p for p in self.phases if p.kind == "finetune")
    s, config = self.state, self.config
    restore = lambda patches: np.asarray(self._restore(s["head"], s["tail"], s["body"], patches,
                                                       self.task))
    rows, samples = evaluate_task(restore, self.client.task, config.eval, suite=config.data.suite,
                                  seed=config.seed, patch_size=config.data.patch_size,
                                  data_dir=config.data.data_dir,
                                  eval_split=config.data.get("eval_split", "test"))
    rows = [{"phase": phase.index, "phase_name": phase.name, "step": phase.end, **row}
            for row in rows]
    report.write_tables(rows, self.workdir)
    report.save_sample_grid(samples, os.path.join(self.workdir, "samples",
                                                  f"phase_{phase.index:02d}.png"))
    files.write_json_atomic(self.results_path, rows)  # Last: its presence means evaluated.
    log.info("client %d: %s", self.index, report.psnr_summary(rows))

  def _run(self) -> None:
    try:
      self._train("local")
      self._prepare_upload()
      self.body_ready.wait()
      self._train("finetune")
      log.info("client %d: fine-tuning finished at step %d", self.index, self.meta["step"])
      if not self._evaluated():
        self._evaluate()
      with self.changed:
        self.finished = True
        self.changed.notify_all()
    except Exception as e:  # pylint: disable=broad-except  # Told to the server by `status`.
      log.exception("client %d: training failed", self.index)
      with self.changed:
        self.error = f"{type(e).__name__}: {e}"
        self.changed.notify_all()

  def warm_up(self) -> None:
    """Starts training (compiling on the way) before the SuperNode joins."""
    threading.Thread(target=self._run, daemon=True, name="single-round-training").start()

  # Requests from the server (docs/design.md §7), each (config, arrays) -> (config, arrays).
  def _wait_for(self, ready, seconds: float) -> bool:
    with self.changed:
      return self.changed.wait_for(lambda: ready() or self.error is not None, timeout=seconds)

  def _progress(self) -> dict:
    return {"step": self.meta["step"], "finished": self.finished, "error": self.error or ""}

  def hello(self, config, arrays):
    del config, arrays
    return {"client_index": self.index, "task": self.client.task, "name": self.client.name,
            "fingerprint": settings.fingerprint(self.config),
            "last_update": self.meta["step"] - 1, "unified": -1}, {}

  def upload(self, config, arrays):
    """Rows start:stop of the token sets, once they exist (else {'ready': False} after `wait`)."""
    del arrays
    if not self._wait_for(lambda: self.uploaded is not None, float(config.get("wait", 0))):
      return {"ready": False, **self._progress()}, {}
    start, stop = int(config["start"]), int(config["stop"])
    if not 0 <= start < stop <= len(self.uploaded):
      raise ProtocolError(f"upload: rows {start}:{stop} are not in [0, {len(self.uploaded)})")
    return {"ready": True, "start": start, "stop": stop}, {"tokens": self.uploaded[start:stop]}

  def download(self, config, arrays):
    """Rows start:stop of the body's flat vector; once whole, the body is committed and
    fine-tuning starts."""
    if self.body_ready.is_set():
      return {"done": True}, {}
    size = int(ravel_pytree(self.state["body"])[0].size)
    if int(config["size"]) != size:
      raise ProtocolError(f"download: a body of {config['size']} values; this client's has {size}")
    if self._body is None:
      self._body = chunks.Assembly((size,), chunks.array_ranges((size,), np.float32,
                                                                int(config["chunk_bytes"])))
    rows = (int(config["start"]), int(config["stop"]))
    if rows not in self._body.parts:  # A resent chunk (the server retried): kept once.
      self._body.add(*rows, arrays.get("body"))
    if not self._body.complete():
      return {"complete": False}, {}
    with self.lock:
      self.state = dict(self.state, body=self._unravel(jnp.asarray(self._body.value())))
      self.meta = dict(self.meta, body=True)
      self._save()
    self.body_ready.set()
    return {"complete": True}, {}

  def status(self, config, arrays):
    """Whether fine-tuning has finished, after waiting up to `wait` seconds for it."""
    del arrays
    self._wait_for(lambda: self.finished, float(config.get("wait", 0)))
    return self._progress(), {}

  def handle(self, kind: str, config: dict, arrays: dict):
    if kind not in ("hello", "upload", "download", "status"):
      raise ProtocolError(f"{kind!r} is not a request of the single round")
    return getattr(self, kind)(config, arrays)
