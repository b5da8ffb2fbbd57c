"""One client's protocol state: head, tail, optimizer state, data, and their checkpoints.

Flower starts a fresh ClientApp process for every message; loading JAX, the state and
compiled functions each time would cost seconds per message. So the ClientApp relays each
message over a local socket to this worker (client_process.py runs it), which keeps all of
that in memory and commits to its own orbax directory before it acknowledges anything that
changed its state.

Every request is idempotent, so the server may resend after a failure on either side:
- forward/backward are pure functions of the committed state and the step (the batch of
  global step s is a pure function of (seed, s)); a client phase step that was already
  applied answers 'done';
- update and set_weights apply at most once per step (the commit records the step).
"""

import functools
import logging
import os
import secrets
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tavit_jax import files, models, protocol, roster
from tavit_jax.data import pipeline
from tavit_jax.flower import settings, wire
from tavit_jax.training import protocols, state as state_lib
from tavit_jax.training.checkpoints import Checkpoints

log = logging.getLogger("tavit_jax.flower.worker")


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def client_init(model: models.Model, client_tasks: Sequence[str], index: int,
                tx: optax.GradientTransformation, seed: int) -> dict:
  """{'head', 'tail', 'opt'} of client `index`, as `init_state` draws it: clients of one
  task start equal."""
  _, clients_rng, _ = protocol.initial_keys(jax.random.PRNGKey(seed))
  task_id = int(roster.task_ids(list(client_tasks))[index])
  head_key, tail_key = protocol.client_init_keys(clients_rng, task_id)
  head, tail = model.init_head(head_key), model.init_tail(tail_key)
  return {"head": head, "tail": tail, "opt": tx.init({"head": head, "tail": tail})}


def permutation_secret(workdir: str) -> int:
  """The client's private seed of its token permutations, made once and kept in its workdir
  (readable by this user only)."""
  path = os.path.join(workdir, "permutation_secret")
  os.makedirs(workdir, exist_ok=True)
  if not os.path.exists(path):
    descriptor = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as f:
      f.write(str(secrets.randbits(128)))
    os.replace(path + ".tmp", path)
  with open(path) as f:
    return int(f.read())


class ProtocolError(Exception):
  """A request this client refuses; its text goes back to the server."""


class ClientWorker:
  """Client `index` of `config.clients`, with its state in `workdir`."""

  def __init__(self, config, index: int, workdir: str):
    tasks = list(config.clients)
    if not 0 <= index < len(tasks):
      raise ValueError(f"client index {index} is not in [0, {len(tasks)})")
    self.config, self.index = config, index
    self.client = roster.assign_clients(tasks)[index]
    self.model = models.build(config.model, config.data.patch_size)
    self.batch_size = config.data.batch_size
    self.token_shape = (self.batch_size, *self.model.token_shape)
    self.feature_dtype = protocol.feature_dtype(self.model)
    self.permute = protocol.check_permutation(config.train.permute_tokens, config.model.pos_emb)
    self.noised = self.model.feature_noise > 0
    self._secret = permutation_secret(workdir) if self.permute or self.noised else None
    self.token_keep = protocol.check_token_keep(config.train.token_keep, config.model.mask_token)
    self.sent_shape = protocol.sent_shape(self.token_shape, self.token_keep)
    tx, _ = state_lib.optimizers(config.train, protocols.make_schedule(config.train, len(tasks)))
    self._forward = jax.jit(functools.partial(protocol.client_forward, self.model))
    self._backward = jax.jit(functools.partial(protocol.client_backward, self.model))
    self._update = jax.jit(functools.partial(protocol.client_update, self.model, tx))
    data = config.data
    self.data = iter(pipeline.train_dataset(
        self.client, suite=data.suite, batch_size=data.batch_size, patch_size=data.patch_size,
        patches_per_image=data.patches_per_image, seed=config.seed, read_threads=data.read_threads,
        data_dir=data.data_dir))
    self.checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"), keep=2)
    fresh = functools.partial(client_init, self.model, tuple(tasks), index, tx, config.seed)
    # Committed bookkeeping: position = global step of the next batch of the data iterator.
    self.meta = {"commit": 0, "position": 0, "last_update": -1, "unified": -1}
    self.committed_data = self.data.get_state()
    latest = self.checkpoints.latest_step()
    if latest is None:
      self.state = fresh()
    else:  # Shapes only: nothing is initialised or compiled to resume.
      self.state, saved = self.checkpoints.restore(latest, jax.eval_shape(fresh))
      self.meta, self.committed_data = saved["meta"], saved["data"]
      self.data.set_state(self.committed_data)
      log.info("client %d resumed from commit %d (last update at step %d)", index,
               self.meta["commit"], self.meta["last_update"])
    self.position = self.meta["position"]
    self.batch = None  # (step, x, y) of the last batch drawn.
    self.pending = None  # Per step: what backward and update need.

  # Data: the batch of global step s, whatever was drawn before.
  def _batch(self, step: int):
    if self.batch is not None and self.batch[0] == step:
      return self.batch[1:]
    if self.position > step:
      if self.meta["position"] > step:
        raise ProtocolError(f"step {step} is before this client's committed step "
                            f"{self.meta['position']}; it cannot be replayed")
      self.data.set_state(self.committed_data)
      self.position = self.meta["position"]
    while self.position < step:
      next(self.data)
      self.position += 1
    batch = next(self.data)
    self.position += 1
    self.batch = (step, batch["input"], batch["target"])
    return self.batch[1:]

  def _commit(self) -> None:
    """Durable before the reply: an acknowledged update or unify survives a crash."""
    self.meta = dict(self.meta, commit=self.meta["commit"] + 1, position=self.position)
    self.committed_data = self.data.get_state()
    self.checkpoints.save(self.meta["commit"], self.state,
                          {"data": self.committed_data, "meta": self.meta})

  def _feature(self, name: str, arrays: dict, shape=None) -> np.ndarray:
    """A received f_B or ∂L/∂f_H: checked, then in the model's feature dtype."""
    array = wire.check_array(name, arrays.get(name), shape or self.token_shape)
    return array.astype(self.feature_dtype, copy=False)

  def _order(self, step: int, key) -> np.ndarray:
    """This client's token order per sample at `step` (docs/design.md §4.2): from its own secret,
    never sent; the same after a restart, so a resent request gets the same answer. When
    punched, the kept tokens come first: the server fills the other slots."""
    rng = np.random.default_rng([self._secret, step])
    b, h, w, _ = self.token_shape
    if self.token_keep == 1:
      return np.stack([rng.permutation(h * w) for _ in range(b)])
    keep = np.asarray(self._keep(key))
    return np.stack([np.concatenate([rng.permutation(np.flatnonzero(row)),
                                     rng.permutation(np.flatnonzero(~row))]) for row in keep])

  def _noise_key(self, step: int):
    """This client's key of its f_H noise at `step` (`model.feature_noise`): from its own
    secret, never sent, so the server cannot subtract the noise; None when not noised."""
    if not self.noised:
      return None
    return jax.random.PRNGKey(np.random.default_rng([self._secret, step, 1]).integers(2**31))

  def _keep(self, key):
    """Which tokens are sent at this step (the server draws the same from the same key)."""
    b, h, w, _ = self.token_shape
    return protocol.keep_masks(jnp.asarray(key, jnp.uint32), b, h * w, self.token_keep)

  def _to_wire(self, step: int, key, array, sent_only: bool = False) -> np.ndarray:
    """What goes up: permuted; f_H (`sent_only`) only its kept tokens when punched."""
    if self.permute:
      array = protocol.permute_tokens(array, self._order(step, key))
    if sent_only and self.token_keep < 1:
      b, h, w, c = self.token_shape
      array = (np.asarray(array).reshape(b, h * w, c)[:, :self.sent_shape[1]] if self.permute
               else protocol.kept_only(array, self._keep(key)))
    return np.asarray(array, np.float32)

  def _from_wire(self, step: int, key, array, sent_only: bool = False):
    """What came down, back on the grid in this client's order (∂L/∂f_H: `sent_only`)."""
    if sent_only and self.token_keep < 1:
      b, h, w, c = self.token_shape
      if self.permute:
        grid = np.zeros((b, h * w, c), array.dtype)
        grid[:, :array.shape[1]] = array
        array = grid.reshape(b, h, w, c)
      else:
        array = protocol.fill_kept(array, self._keep(key), (h, w))
    return protocol.unpermute_tokens(array, self._order(step, key)) if self.permute else array

  def _done(self, config) -> bool:
    return config.get("phase") == "client" and config["step"] <= self.meta["last_update"]

  # Protocol steps (docs/design.md §2.1, §7), each (config, arrays) -> (config, arrays).
  def hello(self, config, arrays):
    del config, arrays
    return {"client_index": self.index, "task": self.client.task, "name": self.client.name,
            "fingerprint": settings.fingerprint(self.config),
            "last_update": self.meta["last_update"], "unified": self.meta["unified"]}, {}

  def forward(self, config, arrays):
    del arrays
    step = config["step"]
    if self._done(config):
      return {"done": True}, {}
    x, y = self._batch(step)
    timesteps = self.model.timesteps(jnp.asarray(config["key"], jnp.uint32), self.batch_size)
    f_h, cache = self._forward(self.state["head"], x, timesteps, self._noise_key(step))
    self.pending = {"step": step, "x": x, "y": y, "t": timesteps, "cache": cache}
    return {}, {"f_h": self._to_wire(step, config["key"], f_h, sent_only=True)}

  def backward(self, config, arrays):
    f_b = self._feature("f_b", arrays)
    if self._done(config):
      return {"done": True}, {}
    if self.pending is None or self.pending["step"] != config["step"]:
      self.forward(config, {})  # Restarted since: recompute, it is pure.
    p = self.pending
    loss, tail_grad, f_b_grad, cache_grad = self._backward(
        self.state["tail"], p["cache"], self._from_wire(p["step"], config["key"], f_b), p["y"])
    p.update(tail_grad=tail_grad, cache_grad=cache_grad, loss=float(loss))
    return {"loss": float(loss)}, {"f_b_grad": self._to_wire(p["step"], config["key"], f_b_grad)}

  def update(self, config, arrays):
    step = config["step"]
    if step <= self.meta["last_update"]:
      return {"done": True}, {}
    f_h_grad = self._feature("f_h_grad", arrays, self.sent_shape)
    p = self.pending
    if p is None or p["step"] != step or "tail_grad" not in p:
      return {"stale": True}, {}  # Restarted after backward: the server redoes the step.
    s = self.state
    head, tail, opt = self._update(s["head"], s["tail"], s["opt"], p["x"], p["t"],
                                   self._from_wire(step, config["key"], f_h_grad, sent_only=True),
                                   p["cache_grad"],
                                   p["tail_grad"])
    self.state = {"head": head, "tail": tail, "opt": opt}
    self.meta = dict(self.meta, last_update=step)
    self._commit()
    self.pending = None
    return {"loss": p["loss"]}, {}

  def get_weights(self, config, arrays):
    del config, arrays
    return {}, files.flatten({"head": self.state["head"], "tail": self.state["tail"]})

  def set_weights(self, config, arrays):
    step = config["step"]
    if step <= self.meta["unified"]:
      return {"done": True}, {}
    current = files.flatten({"head": self.state["head"], "tail": self.state["tail"]})
    if set(arrays) != set(current):
      raise ProtocolError("set_weights: the arrays do not name this client's head and tail")
    for name, value in current.items():
      wire.check_array(name, arrays[name], value.shape, value.dtype)
    weights = jax.tree_util.tree_map(jnp.asarray, files.unflatten(arrays))
    self.state = dict(self.state, head=weights["head"], tail=weights["tail"])
    self.meta = dict(self.meta, unified=step)
    self._commit()
    return {}, {}

  def handle(self, kind: str, config: dict, arrays: dict):
    """One request; a `next_step` in its config also returns f_H of that step
    ('next_f_h'), saving the server a round trip (docs/design.md §2.1, step 1 of the next step)."""
    if kind not in wire.MESSAGE_TYPES:
      raise ProtocolError(f"unknown request {kind!r}")
    reply, out = getattr(self, kind)(config, arrays)
    if "next_step" in config and not reply.get("stale"):
      next_config = {"step": config["next_step"], "key": config["next_key"],
                     "phase": config["next_phase"]}
      next_reply, next_out = self.forward(next_config, {})
      if next_reply.get("done"):
        reply["next_done"] = True
      else:
        out["next_f_h"] = next_out["f_h"]
    return reply, out

  def warm_up(self) -> None:
    """Compiles every step before joining, so the first messages answer in time."""
    x = np.zeros((self.batch_size, self.config.data.patch_size, self.config.data.patch_size, 3),
                 np.float32)
    t = self.model.timesteps(None, self.batch_size)
    f_h, cache = self._forward(self.state["head"], x, t, self._noise_key(0))
    _, tail_grad, _, cache_grad = self._backward(self.state["tail"], cache, f_h, x)
    s = self.state
    jax.block_until_ready(self._update(s["head"], s["tail"], s["opt"], x, t, f_h, cache_grad,
                                       tail_grad))
