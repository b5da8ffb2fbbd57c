"""The split-learning primitives of docs/design.md §2.1, one client at a time, as pure functions, and
the rules both the fused steps and the Flower deployment follow: the RNG streams, the
client's optimizer update and the rounding of what crosses the wire.

These are what a networked deployment sends between machines: only f_H, f_B and their
gradients cross; the cache (skips, time vector), the data and the targets stay on the
client. Backward functions recompute their forward pass instead of holding closures, so
every primitive is a stateless function of arrays. The fused training steps
(`tavit_jax.training.steps`) compute the same thing in one program; a test pins that.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tavit_jax.errors import TavitError
from tavit_jax.models import Model

WIRE_DTYPES = ("float32", "bfloat16")
PERMUTATIONS = ("none", "per_sample")  # train.permute_tokens (docs/design.md §4.2).
_PERMUTATION_STREAM = 0x5045524D  # fold_in tag: the client's permutation key ('PERM').
_KEEP_STREAM = 0x4B454550  # fold_in tag: which tokens a client sends ('KEEP').
_NOISE_STREAM = 0x4E4F4953  # fold_in tag: the client's f_H noise key ('NOIS').


def wire_dtype(name: str):
  """The dtype features and gradients travel in; None when they travel as computed."""
  if name not in WIRE_DTYPES:
    raise TavitError(f"train.wire_dtype must be one of {WIRE_DTYPES}, not {name!r}")
  return jnp.bfloat16 if name == "bfloat16" else None


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def over_wire(x, dtype):
  """`x` as it arrives after travelling in `dtype`; its gradient travels back the same way.

  What a fused step computes in place of a send: f_H and f_B are rounded going forward,
  ∂L/∂f_B and ∂L/∂f_H coming back, exactly where a deployment would cast them.
  """
  return x.astype(dtype).astype(x.dtype)


def _over_wire_fwd(x, dtype):
  return over_wire(x, dtype), None


def _over_wire_bwd(dtype, _, grad):
  return (grad.astype(dtype).astype(grad.dtype),)


over_wire.defvjp(_over_wire_fwd, _over_wire_bwd)


def sender(dtype):
  """What a fused step applies where a message would cross the network: `over_wire` in
  `dtype`, or nothing when features travel as computed (`dtype` None)."""
  return (lambda x: x) if dtype is None else (lambda x: over_wire(x, dtype))


def initial_keys(rng):
  """(body key, clients key, step-RNG key) of a run, from its seed's key. The server and
  every client draw their initial parameters from these without exchanging weights."""
  return jax.random.split(rng, 3)


def client_init_keys(clients_rng, task_id: int):
  """(head key, tail key): clients of one task start equal, tasks from different draws."""
  task_rng = jax.random.fold_in(clients_rng, task_id)
  return jax.random.fold_in(task_rng, 0), jax.random.fold_in(task_rng, 1)


def step_keys(rng, num_clients: int):
  """(next RNG, keys): per global step, per client k a (timestep key, dropout key) pair."""
  rng, step_rng = jax.random.split(rng)
  keys = jax.random.split(step_rng, 2 * num_clients)
  return rng, keys.reshape(num_clients, 2, *rng.shape)


def check_permutation(permute_tokens: str, pos_emb: str) -> bool:
  """Whether tokens are permuted; a body that adds positions itself cannot take them so."""
  if permute_tokens not in PERMUTATIONS:
    raise TavitError(f"train.permute_tokens must be one of {PERMUTATIONS}, not {permute_tokens!r}")
  if permute_tokens != "none" and pos_emb == "server":
    raise TavitError("train.permute_tokens=per_sample needs model.pos_emb=none or client (the "
                     "server's position embedding would be added to shuffled tokens)")
  return permute_tokens != "none"


def permutation_key(step_key):
  """The key of a client's token permutations at one step, from its timestep key.

  In-process this stands for the client's private stream: nothing is sent, so the server
  never learns it. A deployment would draw it from the client's own randomness; by the
  body's permutation equivariance the result is the same to float tolerance.
  """
  return jax.random.fold_in(step_key, _PERMUTATION_STREAM)


def noise_key(step_key):
  """The key of a client's f_H noise at one step (`model.feature_noise`); in-process it
  stands for the client's private stream, as `permutation_key` does."""
  return jax.random.fold_in(step_key, _NOISE_STREAM)


def token_permutations(key, batch: int, num_tokens: int):
  """(batch, num_tokens) int32: a fresh random order of the token positions per sample."""
  return jax.vmap(lambda k: jax.random.permutation(k, num_tokens))(jax.random.split(key, batch))


def permute_tokens(features, permutations):
  """(B, h, w, C) features with their h·w tokens reordered per sample: out[b, i] = in[b, π_b(i)]."""
  b, h, w, c = features.shape
  tokens = jnp.take_along_axis(features.reshape(b, h * w, c), permutations[..., None], axis=1)
  return tokens.reshape(b, h, w, c)


def unpermute_tokens(features, permutations):
  """The inverse of `permute_tokens` with the same permutations."""
  return permute_tokens(features, jnp.argsort(permutations, axis=-1))


def check_token_keep(token_keep: float, mask_token: bool) -> float:
  """ρ, the fraction of f_H tokens each client sends (docs/design.md §4.3)."""
  if not 0 < token_keep <= 1:
    raise TavitError(f"train.token_keep must be in (0, 1], not {token_keep}")
  if token_keep < 1 and not mask_token:
    raise TavitError("train.token_keep < 1 needs model.mask_token=True (the body's learned "
                     "filler for the tokens a client does not send)")
  return float(token_keep)


def kept_tokens(num_tokens: int, token_keep: float) -> int:
  """How many of a sample's tokens are sent: round(ρ·N), at least one."""
  return max(1, round(token_keep * num_tokens))


def sent_shape(token_shape: tuple, token_keep: float) -> tuple:
  """The shape of the f_H (and ∂L/∂f_H) message for (B, h, w, C) tokens: (B, kept, C) when
  punched, else the grid itself."""
  b, h, w, c = token_shape
  return token_shape if token_keep == 1 else (b, kept_tokens(h * w, token_keep), c)


def keep_masks(step_key, batch: int, num_tokens: int, token_keep: float):
  """(batch, num_tokens) bool: a fresh random set of `kept_tokens` positions per sample.

  Drawn from the client's timestep key, which the server sends, so the server knows the
  positions without being told: only the kept tokens' values cross the wire.
  """
  key = jax.random.fold_in(step_key, _KEEP_STREAM)
  orders = token_permutations(key, batch, num_tokens)
  return jnp.argsort(orders, axis=-1) < kept_tokens(num_tokens, token_keep)


def kept_only(features, keep):
  """(B, h, w, C) → (B, kept, C): the kept tokens in position order, what is sent."""
  b, h, w, c = features.shape
  order = jnp.argsort(~keep, axis=-1, stable=True)[:, :int(keep[0].sum())]
  return jnp.take_along_axis(features.reshape(b, h * w, c), order[..., None], axis=1)


def fill_kept(tokens, keep, grid: tuple):
  """The inverse of `kept_only`: (B, kept, C) back on a (B, h, w, C) grid, zeros elsewhere."""
  b, kept, c = tokens.shape
  order = jnp.argsort(~keep, axis=-1, stable=True)[:, :kept]
  full = jnp.zeros((b, grid[0] * grid[1], c), tokens.dtype)
  full = full.at[jnp.arange(b)[:, None], order].set(tokens)
  return full.reshape(b, *grid, c)


def apply_client_grads(tx: optax.GradientTransformation, head, tail, opt_state, head_grad,
                       tail_grad):
  """One optimizer step of a client's head and tail: (head, tail, optimizer state)."""
  params = {"head": head, "tail": tail}
  updates, opt_state = tx.update({"head": head_grad, "tail": tail_grad}, opt_state, params)
  params = optax.apply_updates(params, updates)
  return params["head"], params["tail"], opt_state


def mse(output, target):
  """The training loss: mean squared error in [-1, 1]."""
  return jnp.mean(jnp.square(output - target))


def client_forward(model: Model, head, x, timesteps, noise_rng=None):
  """Step 1, client: returns (f_H to send, cache to keep); `noise_rng`: the client's private
  key for `model.feature_noise` (the noise does not change any gradient, so the backward
  functions recompute f_H without it)."""
  return model.head_apply(head, x, timesteps, noise_rng)


def server_forward(model: Model, body, f_h, dropout_rng=None, keep=None):
  """Step 2, server: returns f_B to send back (`keep`: the tokens sent, if punched)."""
  return model.body_apply(body, f_h, dropout_rng, keep)


def client_backward(model: Model, tail, cache, f_b, target):
  """Step 3, client: loss, tail gradient, ∂L/∂f_B (to send) and ∂L/∂cache (to keep)."""
  def loss_fn(tail, f_b, cache):
    return mse(model.tail_apply(tail, f_b, cache), target)

  loss, (tail_grad, f_b_grad, cache_grad) = jax.value_and_grad(loss_fn, argnums=(0, 1, 2))(
      tail, f_b, cache)
  return loss, tail_grad, f_b_grad, cache_grad


def server_backward(model: Model, body, f_h, f_b_grad, dropout_rng=None, keep=None):
  """Step 4, server: (∂L/∂body, ∂L/∂f_H); the same dropout_rng and keep as the forward."""
  _, vjp = jax.vjp(lambda body, f_h: server_forward(model, body, f_h, dropout_rng, keep), body,
                   f_h)
  return vjp(f_b_grad)


def client_update(model: Model, tx: optax.GradientTransformation, head, tail, opt_state,
                  x, timesteps, f_h_grad, cache_grad, tail_grad):
  """Step 5, client phase: head gradient through f_H, skips and time path, one optimizer step."""
  _, vjp = jax.vjp(lambda head: client_forward(model, head, x, timesteps), head)
  (head_grad,) = vjp((f_h_grad, cache_grad))
  return apply_client_grads(tx, head, tail, opt_state, head_grad, tail_grad)


def server_update(tx: optax.GradientTransformation, body, opt_state, body_grads):
  """Step 4, server phase: one body step on the mean of the clients' gradients."""
  mean_grad = jax.tree_util.tree_map(lambda *g: sum(g) / len(g), *body_grads)
  updates, opt_state = tx.update(mean_grad, opt_state, body)
  return optax.apply_updates(body, updates), opt_state


def feature_dtype(model: Model) -> np.dtype:
  """The dtype of f_H (and f_B and their gradients) in `model`'s computation. Over Flower
  they travel as float32 and are cast back to this on arrival, as the fused step has them."""
  x = jax.ShapeDtypeStruct((1, model.patch_size, model.patch_size, 3), jnp.float32)
  t = jax.ShapeDtypeStruct((1,), jnp.int32)
  head = jax.eval_shape(model.init_head, jax.random.PRNGKey(0))
  return np.dtype(jax.eval_shape(model.head_apply, head, x, t)[0].dtype)
