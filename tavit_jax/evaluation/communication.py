"""Bytes that cross the network (docs/design.md §5.7), from shapes alone: every byte table.

What the training loop reports and the issue's tables show: f_H up, f_B down, ∂L/∂f_B up,
∂L/∂f_H down (client phase only; in the server phase the server sends nothing back), and
the FedAvg upload and download of head + tail parameters on each unifying step. With
punched tokens (`token_keep` ρ < 1) f_H and ∂L/∂f_H carry only the kept tokens. Features
and their gradients travel in `wire_dtype` (bfloat16 halves them); parameters always
travel as stored (float32). The single round (MS-DINO) sends one upload of token sets and
one download of the body per client instead.
"""

import jax
import jax.numpy as jnp
import numpy as np

from tavit_jax import protocol, roster
from tavit_jax.models import Model
from tavit_jax.schedule import client_phase_steps, unifies_after


def mib(num_bytes: int) -> str:
  """Bytes as the tables print them: '12.5 MiB'."""
  return f"{num_bytes / 2**20:,.1f} MiB"


def _nbytes(tree, dtype=None) -> int:
  leaves = jax.tree_util.tree_leaves(tree)
  return sum(int(np.prod(a.shape)) * np.dtype(dtype or a.dtype).itemsize for a in leaves)


def bytes_per_step(model: Model, patch_size: int, batch_size: int,
                   wire_dtype="float32", token_keep: float = 1.0,
                   mix_clients: int = 1) -> dict[str, int]:
  """Predicted bytes per client: per message, per phase and direction, and per FedAvg.

  With CutMixSL's mixing of `mix_clients` K, each message carries a client's own token
  positions only: 1/K of them in expectation (E[λ_k] = 1/K)."""
  wire = jnp.dtype(wire_dtype)
  rng = jax.random.key(0)
  x = jax.ShapeDtypeStruct((batch_size, patch_size, patch_size, 3), jnp.float32)
  t = jax.ShapeDtypeStruct((batch_size,), jnp.int32)
  head = jax.eval_shape(model.init_head, rng)
  f_h, _ = jax.eval_shape(model.head_apply, head, x, t)
  message = _nbytes(f_h, wire) // mix_clients  # f_B and both gradients have f_H's shape.
  tokens = f_h.shape[1] * f_h.shape[2]
  sent = message * protocol.kept_tokens(tokens, token_keep) // tokens  # Only the kept tokens.
  params = _nbytes(head) + _nbytes(jax.eval_shape(model.init_tail, rng))
  return {
      "features_up": sent,  # f_H, client → server.
      "features_down": message,  # f_B, server → client.
      "gradients_up": message,  # ∂L/∂f_B, client → server.
      "gradients_down": sent,  # ∂L/∂f_H, server → client, client phase only.
      "client_phase_up": sent + message,
      "client_phase_down": message + sent,
      "server_phase_up": sent + message,
      "server_phase_down": message,
      "fedavg_upload": params,  # Head + tail to the server, per unifying step.
      "fedavg_download": params,  # The task's average back.
  }


def run_totals(per_step: dict, phases, per_client_steps, task_ids, unify_every: int) -> dict:
  """Bytes each way over a whole alternating schedule, summed over clients.

  A client alone in its task takes no part in FedAvg, so it uploads nothing for it.
  """
  up = down = 0
  for phase in phases:
    if phase.kind == "server":
      up += len(task_ids) * phase.steps * per_step["server_phase_up"]
      down += len(task_ids) * phase.steps * per_step["server_phase_down"]
      continue
    steps = np.minimum(per_client_steps, phase.steps)
    up += int(steps.sum()) * per_step["client_phase_up"]
    down += int(steps.sum()) * per_step["client_phase_down"]
    unifies = sum(unifies_after(phase, step, unify_every)
                  for step in range(phase.start + 1, phase.end + 1))
    sharing = int(roster.shares_task(task_ids).sum())
    up += sharing * unifies * per_step["fedavg_upload"]
    down += sharing * unifies * per_step["fedavg_download"]
  return {"up": up, "down": down}


def _table(title: str, rows: list[tuple[str, str, str]]) -> list[str]:
  """Markdown lines: `title`, then (label, up, down) rows under the two directions."""
  return [title, "", "| | up (client → server) | down (server → client) |", "|---|---|---|",
          *(f"| {label} | {up} | {down} |" for label, up, down in rows)]


def markdown_table(per_step: dict, totals: dict, wire_dtype_name: str) -> list[str]:
  """Bytes per client per step each way, per FedAvg, and the run's total, as Markdown lines."""
  return _table(f"Communication (features and gradients in {wire_dtype_name}):", [
      ("client-phase step, per client", f"{per_step['client_phase_up']:,} B",
       f"{per_step['client_phase_down']:,} B"),
      ("server-phase step, per client", f"{per_step['server_phase_up']:,} B",
       f"{per_step['server_phase_down']:,} B"),
      ("FedAvg, per client and unifying step", f"{per_step['fedavg_upload']:,} B",
       f"{per_step['fedavg_download']:,} B"),
      ("whole run, all clients", mib(totals["up"]), mib(totals["down"])),
  ])


def alternating_bytes(config, model: Model, phases, mix_clients: int = 1) -> tuple[dict, dict]:
  """(bytes_per_step, run_totals) of a split run that exchanges messages every step (with
  CutMixSL's mixing of `mix_clients`: each client's own share of the grid)."""
  train = config.train
  per_step = bytes_per_step(model, config.data.patch_size, config.data.batch_size,
                            train.wire_dtype, train.token_keep, mix_clients)
  ids = roster.task_ids(list(config.clients))
  totals = run_totals(per_step, phases, client_phase_steps(train, len(ids)), ids,
                      train.unify_every)
  return per_step, totals


def single_round_bytes(model: Model, config, wire_dtype_name: str) -> dict:
  """Per client in the single round: the one upload (its token sets) and the one download
  (the body, as stored)."""
  side, _, width = model.token_shape
  samples = config.train.single_round.upload_batches * config.data.batch_size
  upload = samples * side * side * width * jnp.dtype(wire_dtype_name).itemsize
  body = _nbytes(jax.eval_shape(model.init_body, jax.random.key(0)))
  return {"uploads": 1, "downloads": 1, "upload_bytes": int(upload), "download_bytes": body}


def single_round_table(per_client: dict, num_clients: int, wire_dtype_name: str) -> list[str]:
  """Markdown lines: the single round's messages and bytes per client and in total."""
  return _table(
      f"Communication (single round; tokens in {wire_dtype_name}, the body in float32):", [
          ("messages per client", str(per_client["uploads"]), str(per_client["downloads"])),
          ("per client", f"{per_client['upload_bytes']:,} B", f"{per_client['download_bytes']:,} B"),
          ("whole run, all clients", mib(num_clients * per_client["upload_bytes"]),
           mib(num_clients * per_client["download_bytes"])),
      ])
