"""CutMixSL's mixed tokens (docs/design.md §4.3, `train.token_mix=cutmix`): groups of K
clients share one token grid per sample slot.

[paper] CutMixSL mixes the punched smashed data of several clients into one sample on the
server. Our adaptation to TAViT: per step, the clients are split into fixed groups of
`train.mix_clients` K (`train.mix_pairing`: `same_task`, or `any`: one client of each
task in turn, so a group mixes tasks). Per group and sample slot the server draws
λ ~ Dirichlet(1, …, 1) and disjoint random token sets M_k with |M_k| = round(λ_k·N)
(together all N); client k sends only its M_k tokens of f_H, the body runs on the pasted
grid Σ_k M_k ⊙ f_H^k, and client k receives only its M_k positions of f_B (its tail sees
its own f_H elsewhere). Client k's loss covers the pixels under its own tokens; the body
and every head learn from the group's summed loss, as the server backpropagates the mixed
sample. Expected bytes each way: 1/K of the message (the communication table).
"""

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tavit_jax.errors import TavitError

TOKEN_MIXES = ("none", "cutmix")
PAIRINGS = ("same_task", "any")
_MIX_STREAM = 0x4D495820  # fold_in tag of a group's mixing key ('MIX ').


def check(token_mix: str, mix_clients: int, pairing: str, token_keep: float) -> None:
  """One-line refusals of settings the mixed step cannot run."""
  if token_mix not in TOKEN_MIXES:
    raise TavitError(f"train.token_mix must be one of {TOKEN_MIXES}, not {token_mix!r}")
  if token_mix == "none":
    return
  if pairing not in PAIRINGS:
    raise TavitError(f"train.mix_pairing must be one of {PAIRINGS}, not {pairing!r}")
  if mix_clients < 2:
    raise TavitError(f"train.mix_clients must be at least 2 to mix, not {mix_clients}")
  if token_keep != 1:
    raise TavitError("train.token_mix=cutmix already sends each client a fraction λ_k of its "
                     "tokens; leave train.token_keep at 1")


def groups(client_tasks: Sequence[str], mix_clients: int, pairing: str) -> np.ndarray:
  """(G, K) client indices: the fixed mixing groups."""
  num_clients = len(client_tasks)
  if mix_clients > num_clients:
    raise TavitError(f"train.mix_clients={mix_clients} is larger than the {num_clients} clients")
  by_task = {}
  for k, task in enumerate(client_tasks):
    by_task.setdefault(task, []).append(k)
  if pairing == "same_task":
    if any(len(members) % mix_clients for members in by_task.values()):
      raise TavitError(f"train.mix_pairing=same_task needs every task's clients in groups of "
                       f"train.mix_clients={mix_clients}; counts: "
                       f"{ {t: len(m) for t, m in by_task.items()} }")
    order = [k for members in by_task.values() for k in members]
  else:  # Round robin over the tasks: consecutive clients of `order` have different tasks.
    queues = [list(members) for members in by_task.values()]
    order = [q.pop(0) for _ in range(num_clients) for q in queues if q][:num_clients]
    if num_clients % mix_clients:
      raise TavitError(f"train.mix_clients={mix_clients} must divide the {num_clients} clients")
  return np.array(order, np.int32).reshape(-1, mix_clients)


def masks(key, batch: int, num_tokens: int, mix_clients: int):
  """(K, batch, num_tokens) bool: disjoint random token sets covering every position, sizes
  round(λ_k·N) with λ ~ Dirichlet(1…1) drawn per sample."""
  lambda_key, order_key = jax.random.split(jax.random.fold_in(key, _MIX_STREAM))
  lambdas = jax.random.dirichlet(lambda_key, jnp.ones(mix_clients), (batch,))  # (B, K)
  bounds = jnp.round(jnp.cumsum(lambdas, axis=-1) * num_tokens)  # (B, K); last = N.
  ranks = jnp.argsort(jax.vmap(lambda k: jax.random.permutation(k, num_tokens))(
      jax.random.split(order_key, batch)), axis=-1)  # A random rank per token.
  owner = jnp.sum(ranks[:, :, None] >= bounds[:, None, :], axis=-1)  # (B, N) in [0, K).
  return owner[None] == jnp.arange(mix_clients)[:, None, None]


def paste(sent: Sequence, owned_grid):
  """The server's grid Σ_k M_k ⊙ sent_k from the clients' (B, h, w, C) tokens and their
  (K, B, h, w, 1) masks: each position holds exactly one client's token."""
  return sum(jnp.where(owned_grid[k], tokens, 0) for k, tokens in enumerate(sent))


def pixel_mask(token_mask, grid: tuple, patch_size: int):
  """(B, N) token mask → (B, P, P, 1): the pixels under the tokens."""
  b = token_mask.shape[0]
  block = patch_size // grid[0]
  square = token_mask.reshape(b, *grid)
  return jnp.repeat(jnp.repeat(square, block, axis=1), block, axis=2)[..., None]


def masked_mse(output, target, mask):
  """Mean squared error over the masked pixels (and channels) only."""
  mask = mask.astype(output.dtype)
  return jnp.sum(mask * jnp.square(output - target)) / (jnp.sum(mask) * output.shape[-1])
