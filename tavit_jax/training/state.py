"""Training state as plain pytrees and the two optimizers (FedAvg: tavit_jax/fedavg.py).

state = {
  'server':  {'body': params, 'opt': body optimizer state},
  'clients': {'head': ..., 'tail': ..., 'opt': ...}, every leaf stacked on a client axis,
  'step': global step, 'rng': PRNG key,
}
Each side has its own optax state, so a phase updates exactly one of them.
"""

from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import optax

from tavit_jax import protocol, schedule as schedule_lib
from tavit_jax.errors import TavitError
from tavit_jax.models import Model
from tavit_jax.roster import task_ids


def optimizer(learning_rate: float, config: ml_collections.ConfigDict,
              updates: int = 0) -> optax.GradientTransformation:
  """Adam with the official client betas (0.5, 0.999), optionally after clipping the
  gradient's global norm (`grad_clip` > 0; not in the official optimizer).

  `lr_decay='cosine'` (not official) holds the rate for the first `lr_hold` fraction of
  `updates` steps, then lowers it to 0 along a cosine: a short run's last steps settle
  instead of leaving weight noise that mild inputs pay for.
  """
  if config.lr_decay == "cosine":
    hold = int(config.lr_hold * updates)
    learning_rate = optax.join_schedules(
        [optax.constant_schedule(learning_rate),
         optax.cosine_decay_schedule(learning_rate, max(updates - hold, 1))], [hold])
  elif config.lr_decay != "constant":
    raise TavitError(f"train.lr_decay must be 'constant' or 'cosine', not {config.lr_decay!r}")
  adam = optax.adam(learning_rate, b1=config.b1, b2=config.b2)
  return optax.chain(optax.clip_by_global_norm(config.grad_clip), adam) if config.grad_clip else adam


def optimizers(config: ml_collections.ConfigDict, phases: list[schedule_lib.Phase]):
  """(client, server) optimizers of `config.train`, each decaying (if asked) over the
  updates its side makes in the whole schedule `phases`."""
  client_updates = sum(p.steps for p in phases if p.kind in schedule_lib.CLIENT_KINDS + ("joint",))
  server_updates = sum(p.steps for p in phases if p.kind in schedule_lib.SERVER_KINDS)
  return (optimizer(config.client_lr, config, client_updates),
          optimizer(config.server_lr, config, server_updates))


def init_state(model: Model, client_tasks: Sequence[str], client_tx, server_tx, rng) -> dict:
  """Fresh state; clients of one task start from the same head/tail (so FedAvg averages
  models from a common start), different tasks from different draws."""
  body_rng, clients_rng, rng = protocol.initial_keys(rng)
  body = model.init_body(body_rng)
  ids = task_ids(client_tasks)
  per_task = [protocol.client_init_keys(clients_rng, i) for i in range(ids.max() + 1)]
  heads = [model.init_head(head_key) for head_key, _ in per_task]
  tails = [model.init_tail(tail_key) for _, tail_key in per_task]
  stack = lambda trees: jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)
  head, tail = stack([heads[i] for i in ids]), stack([tails[i] for i in ids])
  clients_opt = jax.vmap(lambda h, t: client_tx.init({"head": h, "tail": t}))(head, tail)
  return {
      "server": {"body": body, "opt": server_tx.init(body)},
      "clients": {"head": head, "tail": tail, "opt": clients_opt},
      "step": jnp.zeros((), jnp.int32),
      "rng": rng,
  }
