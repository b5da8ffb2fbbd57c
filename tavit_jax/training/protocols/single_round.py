"""MS-DINO's single round (docs/design.md §4.4): one upload of token sets, DINO on the server, one download.

`train.mode=single_round` runs four phases (schedule.py), each resumable like any other:
1. local: each client trains its head and tail through the body's public initialisation,
   which every client builds from the run's seed itself (our stand-in body: no message);
   no FedAvg, which would be a message.
2. upload: each client sends, once, `upload_batches` batches of f_H from its head (frozen
   from here on for what it sent), every sample's tokens in a fresh order and its f_H noise
   (`model.feature_noise`) from the client's private secret (p-FeSTA's permutation,
   docs/design.md §4.2; needs `model.pos_emb=none` or `client`). In-process the secret is
   `simulated_secret(seed, k)`; over Flower each client draws its own and keeps it in its
   workdir (a client given the simulated one uploads exactly what this run does). The server
   keeps them in `state['server']['uploaded']`: the only client data it ever holds. The
   order hides no positions: each token carries the head's position embedding, so a server
   that can run the head on images of its own puts the tokens back in order and inverts
   them (EXPERIMENTS.md, privacy section); treat the upload as revealing the client's images.
3. dino: the server alone trains the body by self-distillation on those tokens (dino.py).
4. finetune: each client downloads the body once and fine-tunes its head and tail through
   its copy (frozen) with no further messages: the client steps of the other modes, whose
   body is that copy.
"""

import dataclasses
import functools
import hashlib

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from tavit_jax import protocol, schedule as schedule_lib
from tavit_jax.errors import TavitError
from tavit_jax.evaluation import communication
from tavit_jax.models import Model
from tavit_jax.training import dino
from tavit_jax.training.protocols.base import Protocol


class SingleRound(Protocol):
  name = "single_round"

  def phases(self, train, num_clients):
    del num_clients
    if "single_round" not in train:
      raise TavitError("train.mode=single_round needs the train.single_round section of "
                       "configs/single_round.py; start from that config")
    lengths = train.single_round
    return schedule_lib.once([("local", lengths.local_steps), ("upload", lengths.upload_batches),
                              ("dino", lengths.dino_steps), ("finetune", lengths.finetune_steps)],
                             "train.single_round")

  def check(self, config):
    if config.model.pos_emb == "server":
      raise TavitError("train.mode=single_round uploads permuted tokens, which needs "
                       "model.pos_emb=none or client (the body must have no positions)")
    if config.train.get("body_from") is not None:
      raise TavitError("train.body_from needs train.mode=alternating, simultaneous or "
                       "end_to_end (the single round trains its body by DINO from the start)")
    if config.train.get("token_keep", 1.0) < 1:
      raise TavitError("train.token_keep < 1 is not applied by train.mode=single_round: its "
                       "upload sends every token of each sample; leave train.token_keep at 1")

  def init_state(self, model, config, state, server_tx):
    return init(model, state, config, server_tx, jax.random.PRNGKey(config.seed + 1))

  def make_steps(self, model, config, client_tx, server_tx, ids, shardings, phases, options):
    steps = super().make_steps(model, config, client_tx, server_tx, ids, shardings, phases,
                               options)
    upload, dino_step = make_steps(model, config, server_tx, phases, options.wire_dtype)
    return dataclasses.replace(steps, upload=upload, dino=dino_step)

  def run_bytes(self, config, model, phases):
    per_client = communication.single_round_bytes(model, config, config.train.wire_dtype)
    return {"up": len(config.clients) * per_client["upload_bytes"],
            "down": len(config.clients) * per_client["download_bytes"]}

  def communication_table(self, config, model, phases):
    per_client = communication.single_round_bytes(model, config, config.train.wire_dtype)
    return communication.single_round_table(per_client, len(config.clients),
                                            config.train.wire_dtype)


def next_rng(kind: str, rng, num_clients: int):
  """(the RNG after one step of a `kind` phase, that step's per-client keys or None): the
  run's one stream, which over Flower every process replays from the seed."""
  if kind == "dino":
    return dino_keys(rng)[0], None
  return protocol.step_keys(rng, num_clients)


def dino_keys(rng):
  """(next RNG, sample key, view key) of one DINO step."""
  return jax.random.split(rng, 3)


def simulated_secret(seed: int, client: int) -> int:
  """Client `client`'s private 128-bit secret as the in-process run stands it in (a Flower
  client draws its own and keeps it in its workdir; the server never sees it)."""
  digest = hashlib.sha256(f"tavit single round secret {seed} {client}".encode()).digest()
  return int.from_bytes(digest[:16], "little")


def secret_key(secret: int):
  """The PRNG key of a 128-bit secret (its four 32-bit words folded in)."""
  key = jax.random.PRNGKey(0)
  for word in range(4):
    key = jax.random.fold_in(key, np.uint32((secret >> (32 * word)) & 0xFFFFFFFF))
  return key


def upload_tokens(model: Model, head, x, timestep_key, secret, step, send=lambda a: a):
  """One batch of a client's upload, (B, N, C): f_H of its frozen head at global `step`,
  noised (`model.feature_noise`) and each sample's tokens shuffled from its `secret` key,
  so the server can neither subtract the noise nor read the order."""
  private = jax.random.fold_in(secret, step)
  batch = x.shape[0]
  f_h, _ = model.head_apply(head, x, model.timesteps(timestep_key, batch),
                            protocol.noise_key(private))
  num_tokens = f_h.shape[1] * f_h.shape[2]
  order = protocol.token_permutations(protocol.permutation_key(private), batch, num_tokens)
  return send(protocol.permute_tokens(f_h, order)).reshape(batch, num_tokens, f_h.shape[-1])


def view_sizes(settings, num_tokens: int) -> tuple[int, ...]:
  """Tokens per view: the teacher's two large views first, then the student's small ones."""
  large = max(1, int(settings.global_view * num_tokens))
  small = max(1, int(settings.local_view * num_tokens))
  return (large, large) + (small,) * settings.local_views


def init(model: Model, state: dict, config: ml_collections.ConfigDict, server_tx, rng) -> dict:
  """`state` with the server's store of uploaded tokens (zeros until the upload) and the
  DINO state: the student's projection head, the EMA teacher, the centre and the optimizer
  of body + projection head."""
  settings = config.train.single_round
  side, _, width = model.token_shape
  num_clients = len(config.clients)
  uploaded = jnp.zeros((num_clients, settings.upload_batches * config.data.batch_size,
                        side * side, width), jnp.float32)
  head = dino.ProjectionHead(settings.prototypes)
  projection = head.init(rng, jnp.zeros((1, width)))["params"]
  student = {"body": state["server"]["body"], "projection": projection}
  teacher = jax.tree_util.tree_map(jnp.copy, student)
  server = dict(state["server"], uploaded=uploaded, dino={
      "projection": projection, "teacher": teacher, "opt": server_tx.init(student),
      "center": jnp.zeros((settings.prototypes,), jnp.float32)})
  return dict(state, server=server)


def make_steps(model: Model, config: ml_collections.ConfigDict, server_tx, phases, wire_dtype):
  """(upload, dino) steps: (state, batch) -> (state, metrics)."""
  settings = config.train.single_round
  upload_start = next(p.start for p in phases if p.kind == "upload")
  dino_start = next(p.start for p in phases if p.kind == "dino")
  num_clients, batch_size = len(config.clients), config.data.batch_size
  side, _, width = model.token_shape
  num_tokens = side * side
  sizes = view_sizes(settings, num_tokens)
  projection_head = dino.ProjectionHead(settings.prototypes)
  client_tokens = functools.partial(upload_tokens, model, send=protocol.sender(wire_dtype))
  secrets = jnp.stack([secret_key(simulated_secret(config.seed, k)) for k in range(num_clients)])

  def upload(state, batch):
    rng, keys = next_rng("upload", state["rng"], num_clients)
    tokens = jax.vmap(client_tokens, in_axes=(0, 0, 0, 0, None))(
        state["clients"]["head"], batch["input"], keys[:, 0], secrets, state["step"])
    offset = (state["step"] - upload_start) * batch_size
    uploaded = jax.lax.dynamic_update_slice_in_dim(state["server"]["uploaded"], tokens, offset,
                                                   axis=1)
    server = dict(state["server"], uploaded=uploaded)
    return dict(state, server=server, step=state["step"] + 1, rng=rng), {}

  def logits(body, projection, view):
    """A view (B, n, C) through the body (no positions: any token subset is an input),
    mean-pooled, to prototype logits."""
    tokens = model.body_apply(body, view[:, :, None, :])
    return projection_head.apply({"params": projection}, tokens.mean(axis=(1, 2)))

  def dino_step(state, batch=None):
    del batch  # The server reads only what was uploaded.
    server, d = state["server"], state["server"]["dino"]
    rng, sample_key, view_key = dino_keys(state["rng"])
    pool = server["uploaded"].reshape(-1, num_tokens, width)
    tokens = pool[jax.random.randint(sample_key, (settings.dino_batch,), 0, pool.shape[0])]
    views = dino.token_views(view_key, tokens, sizes)
    teacher = d["teacher"]
    teacher_logits = [logits(teacher["body"], teacher["projection"], v) for v in views[:2]]

    def loss_fn(student):
      student_logits = [logits(student["body"], student["projection"], v) for v in views]
      return dino.dino_loss(teacher_logits, student_logits, d["center"])

    student = {"body": server["body"], "projection": d["projection"]}
    loss, grads = jax.value_and_grad(loss_fn)(student)
    updates, opt = server_tx.update(grads, d["opt"], student)
    student = optax.apply_updates(student, updates)
    momentum = dino.teacher_momentum(state["step"] - dino_start, settings.dino_steps)
    d = {"projection": student["projection"], "opt": opt,
         "teacher": dino.ema(teacher, student, momentum),
         "center": dino.update_center(d["center"], teacher_logits)}
    server = dict(server, body=student["body"], dino=d)
    return dict(state, server=server, step=state["step"] + 1, rng=rng), {"dino_loss": loss}

  return jax.jit(upload, donate_argnums=0), jax.jit(dino_step, donate_argnums=0)
