"""The server's state and arithmetic: body, body optimizer, step RNG, and their checkpoints.

The same pure primitives as the in-process steps (`tavit_jax.protocol`), and the same
RNG stream: per global step `rng, step_rng = split(rng)` and per client k the keys
`split(step_rng, 2K)[2k:2k+2]` (timesteps, dropout), so a run over Flower ends where the
in-process run with the same seed ends. The server and every client draw their initial
state from one seed without exchanging weights (`server_init` here, `worker.client_init`);
a test pins both against `training.state.init_state`. Compiled: eager Flax init dispatches
op by op and took a minute on a busy 2-core machine, the compiled one a few seconds.
"""

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tavit_jax import models, protocol
from tavit_jax.training import protocols, state as state_lib
from tavit_jax.training.checkpoints import Checkpoints


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def server_init(model: models.Model, tx: optax.GradientTransformation, seed: int) -> dict:
  """{'body', 'opt', 'rng'}: the server's part of `init_state`."""
  body_rng, _, rng = protocol.initial_keys(jax.random.PRNGKey(seed))
  body = model.init_body(body_rng)
  return {"body": body, "opt": tx.init(body), "rng": rng}


class BodyServer:

  def __init__(self, config, workdir: str):
    self.num_clients = len(config.clients)
    self.model = models.build(config.model, config.data.patch_size)
    self.token_shape = (config.data.batch_size, *self.model.token_shape)
    self.token_keep = protocol.check_token_keep(config.train.token_keep, config.model.mask_token)
    self.permuted = protocol.check_permutation(config.train.permute_tokens, config.model.pos_emb)
    # f_H and ∂L/∂f_H carry only the kept tokens when punched (docs/design.md §5.4).
    self.sent_shape = protocol.sent_shape(self.token_shape, self.token_keep)
    self.feature_dtype = protocol.feature_dtype(self.model)
    self.dropout = config.model.body_dropout > 0
    _, tx = state_lib.optimizers(config.train,
                                 protocols.make_schedule(config.train, self.num_clients))
    self._forward = jax.jit(functools.partial(protocol.server_forward, self.model))
    self._backward = jax.jit(functools.partial(protocol.server_backward, self.model))
    self._update = jax.jit(functools.partial(protocol.server_update, tx))
    self.checkpoints = Checkpoints(os.path.join(workdir, "checkpoints"),
                                   keep=config.train.keep_checkpoints)
    self.unify_dir = os.path.join(workdir, "unify")
    fresh = lambda: dict(server_init(self.model, tx, config.seed), step=jnp.zeros((), jnp.int32))
    latest = self.checkpoints.latest_step()
    if latest is None:
      self.state = fresh()
      self.meta = {"unified": -1}  # Global step of the last completed FedAvg.
    else:  # Shapes only: nothing is initialised or compiled to resume.
      self.state, self.meta = self.checkpoints.restore(latest, jax.eval_shape(fresh))

  @property
  def step(self) -> int:
    return int(self.state["step"])

  def begin_step(self) -> np.ndarray:
    """Advances the step and the RNG; per client (timestep key, dropout key)."""
    rng, keys = self._split(self.state["rng"])
    self.state = dict(self.state, rng=rng, step=self.state["step"] + 1)
    return keys

  def next_keys(self) -> np.ndarray:
    """The keys `begin_step` will give at the next step (for prefetching f_H)."""
    return self._split(self.state["rng"])[1]

  def _split(self, rng):
    rng, keys = protocol.step_keys(rng, self.num_clients)
    return rng, np.asarray(keys)

  def dropout_key(self, keys: np.ndarray, k: int):
    return keys[k, 1] if self.dropout else None

  def _received(self, f_h: np.ndarray, step_key):
    """f_H on the token grid and the kept mask (None unless punched). The kept tokens sit
    where the step's key says, or, when clients permute, in the first slots (their order
    is the clients' secret and the body does not depend on it)."""
    f_h = f_h.astype(self.feature_dtype, copy=False)
    if self.token_keep == 1:
      return f_h, None
    b, h, w, _ = self.token_shape
    if self.permuted:
      keep = np.broadcast_to(np.arange(h * w) < f_h.shape[1], (b, h * w))
    else:
      keep = protocol.keep_masks(step_key, b, h * w, self.token_keep)
    return protocol.fill_kept(f_h, keep, (h, w)), keep

  def forward(self, f_h: np.ndarray, dropout_key, step_key) -> np.ndarray:
    f_h, keep = self._received(f_h, step_key)
    return np.asarray(self._forward(self.state["body"], f_h, dropout_key, keep), np.float32)

  def backward(self, f_h: np.ndarray, f_b_grad: np.ndarray, dropout_key, step_key):
    """(∂L/∂body, ∂L/∂f_H as numpy, of the kept tokens only if punched)."""
    f_h, keep = self._received(f_h, step_key)
    f_b_grad = f_b_grad.astype(self.feature_dtype, copy=False)
    body_grad, f_h_grad = self._backward(self.state["body"], f_h, f_b_grad, dropout_key, keep)
    if keep is not None:
      f_h_grad = protocol.kept_only(f_h_grad, keep)
    return body_grad, np.asarray(f_h_grad, np.float32)

  def apply(self, body_grads: list) -> None:
    """One body step on the mean of the clients' gradients (docs/design.md §2.1, step 4)."""
    body, opt = self._update(self.state["body"], self.state["opt"], body_grads)
    self.state = dict(self.state, body=body, opt=opt)

  def save(self) -> None:
    """Once per step: a FedAvg saves first, the regular checkpoint then has nothing to add."""
    if self.checkpoints.latest_step() != self.step:
      self.checkpoints.save(self.step, self.state, self.meta)

  # FedAvg in two stages, so that a restart resends the same means.
  def _unify_path(self, step: int) -> str:
    return os.path.join(self.unify_dir, f"{step}.npz")

  def pending_means(self, step: int):
    """The means computed for the FedAvg at `step` before a crash, if any."""
    path = self._unify_path(step)
    if not os.path.exists(path):
      return None
    with np.load(path) as saved:
      flat = {name: saved[name] for name in saved.files}
    return json.loads(str(flat.pop("__tasks__"))), flat

  def keep_means(self, step: int, tasks: list[int], flat: dict) -> None:
    os.makedirs(self.unify_dir, exist_ok=True)
    tmp = self._unify_path(step) + ".tmp.npz"
    np.savez(tmp, __tasks__=np.array(json.dumps(tasks)), **flat)
    os.replace(tmp, self._unify_path(step))

  def finish_unify(self, step: int) -> None:
    """Checkpoint first: until it exists, a restart resends the kept means."""
    self.meta = dict(self.meta, unified=step)
    self.save()
    for name in os.listdir(self.unify_dir) if os.path.isdir(self.unify_dir) else []:
      os.remove(os.path.join(self.unify_dir, name))
