"""The message exchanges of one step with one client, as the server runs them:
docs/design.md §2.1 message by message.

Each function returns a generator for `Fleet.run`: it yields (kind, config, arrays)
requests and receives (config, arrays) replies; the server's arithmetic happens between
them. Per step and client, the arrays that cross are

  client phase: ↑ f_H, ↓ f_B, ↑ ∂L/∂f_B, ↓ ∂L/∂f_H, then the client steps;
  server phase: ↑ f_H, ↓ f_B, ↑ ∂L/∂f_B; the body steps on the clients' mean gradient.

f_H of the next step rides on the last reply of a step when nothing in between changes
the head (`Prefetch`), saving a round trip; otherwise a 'forward' request asks for it.
"""

import dataclasses
from typing import Optional

import numpy as np

from tavit_jax.flower import wire
from tavit_jax.flower.fleet import Rejected, Restart
from tavit_jax.flower.server import BodyServer

DONE = "done"  # Prefetched marker: the client had already applied that step.


@dataclasses.dataclass(frozen=True)
class Prefetch:
  """Ask for f_H of `step` (phase `phase`, timestep key `key`) with the last reply."""

  step: int
  phase: str
  key: list

  def config(self) -> dict:
    return {"next_step": self.step, "next_phase": self.phase, "next_key": self.key}


def key_list(key: np.ndarray) -> list:
  return [int(v) for v in np.asarray(key).ravel()]


def _checked(name: str, array, shape) -> np.ndarray:
  try:
    return wire.check_array(name, array, shape)
  except wire.BadArray as e:
    raise Rejected(str(e)) from None


def _keep_prefetch(prefetched: dict, k: int, prefetch: Optional[Prefetch], config, arrays):
  if prefetch is None:
    return
  if config.get("next_done"):
    prefetched[k] = (prefetch.step, DONE)
  elif "next_f_h" in arrays:
    prefetched[k] = (prefetch.step, arrays["next_f_h"])


def step_task(server: BodyServer, k: int, step: int, phase: str, keys: np.ndarray,
              prefetched: dict, prefetch: Optional[Prefetch]):
  """Client k's part of global `step` of a `phase` ('client' or 'server') phase.

  Returns a factory `fresh -> generator`; the generator returns {'loss'} (client phase),
  {'loss', 'body_grad'} (server phase) or None if the client had already done the step.
  """

  def task(fresh: bool):
    common = {"step": step, "phase": phase, "key": key_list(keys[k, 0])}
    dropout_key = server.dropout_key(keys, k)
    f_h = None
    if k in prefetched:
      at, value = prefetched.pop(k)
      if at == step and not fresh:
        if value is DONE:
          return None
        f_h = value
    if f_h is None:
      config, arrays = yield ("forward", common, {})
      if config.get("done"):
        return None
      f_h = arrays.get("f_h")
    f_h = _checked("f_h", f_h, server.sent_shape)
    f_b = server.forward(f_h, dropout_key, keys[k, 0])
    last = phase == "server"
    extra = prefetch.config() if last and prefetch else {}
    config, arrays = yield ("backward", {**common, **extra}, {"f_b": f_b})
    if config.get("done"):
      return None
    f_b_grad = _checked("f_b_grad", arrays.get("f_b_grad"), server.token_shape)
    body_grad, f_h_grad = server.backward(f_h, f_b_grad, dropout_key, keys[k, 0])
    loss = float(config["loss"])
    if last:
      _keep_prefetch(prefetched, k, prefetch, config, arrays)
      return {"loss": loss, "body_grad": body_grad}
    extra = prefetch.config() if prefetch else {}
    config, arrays = yield ("update", {**common, **extra}, {"f_h_grad": f_h_grad})
    if config.get("stale"):
      raise Restart()
    _keep_prefetch(prefetched, k, prefetch, config, arrays)
    return {"loss": loss}

  return task


def get_weights_task(step: int):
  def task(fresh: bool):
    del fresh
    _, arrays = yield ("get_weights", {"step": step}, {})
    return arrays

  return task


def set_weights_task(step: int, weights: dict):
  def task(fresh: bool):
    del fresh
    yield ("set_weights", {"step": step}, weights)
    return True

  return task
