"""TAViT as three plain parameter trees: client head and tail, server body.

The rest of the library sees only `init_*(rng) -> params` and the `*_apply` functions of
`Model`; the Flax modules stay inside this package.
"""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections

from tavit_jax.errors import TavitError
from tavit_jax.models.body import Body
from tavit_jax.models.head import Head
from tavit_jax.models.tail import Tail

TIME_CONDITIONING = ("fixed", "random")
# Who adds the position embedding to the tokens (docs/design.md §4.2): the server's body
# (official), the client's head (p-FeSTA; every sent token then carries its position), or
# nobody (the body is a set function; the tail gets f_B back in order and the skips carry
# position).
POS_EMB = ("server", "client", "none")
NECKS = ("none", "sca_mtl")  # What follows the encoder in the body (docs/design.md §4.5).
DTYPES = {"float32": None, "bfloat16": jnp.bfloat16}  # Compute dtypes; params stay float32.
NUM_TIMESTEPS = 1000  # Official random timesteps are drawn from [0, 1000).


@dataclasses.dataclass(frozen=True)
class Model:
  """The split network for patches of `patch_size`; all functions are pure."""

  head: Head
  body: Body
  tail: Tail
  patch_size: int
  time_conditioning: str = "fixed"
  # Not in the official model: the tail predicts a correction added to the input patch
  # (kept in the client's cache). Parameter trees are unchanged. See configs/default.py.
  residual: bool = False
  # A defence on f_H (not official; no parameters): each token's RMS over its channels is
  # clipped to `feature_clip` (always, inference too), and Gaussian noise of standard
  # deviation `feature_noise` × `feature_clip` per channel is added to every f_H that is
  # sent in training (`noise_rng`). 0: off.
  feature_clip: float = 0.0
  feature_noise: float = 0.0

  @property
  def token_shape(self) -> tuple[int, int, int]:
    """Shape of f_H / f_B per patch: what crosses the network."""
    side = self.patch_size // 2 ** (len(self.head.dim_mults) - 1)
    return (side, side, self.head.dim * self.head.dim_mults[-1])

  def timesteps(self, rng, batch: int):
    """t = 0 ('fixed') or uniform in [0, 1000) per sample ('random', the official behaviour)."""
    if self.time_conditioning == "fixed" or rng is None:
      return jnp.zeros((batch,), jnp.int32)
    return jax.random.randint(rng, (batch,), 0, NUM_TIMESTEPS)

  def _example(self):
    return jnp.zeros((1, self.patch_size, self.patch_size, 3), jnp.float32)

  def init_head(self, rng):
    return self.head.init(rng, self._example(), jnp.zeros((1,), jnp.int32))["params"]

  def init_body(self, rng):
    return self.body.init(rng, jnp.zeros((1, *self.token_shape), jnp.float32),
                          task=jnp.zeros((), jnp.int32))["params"]

  def init_tail(self, rng):
    # Only the shapes of the head's outputs matter: no head is initialised or run.
    head_shapes = jax.eval_shape(self.init_head, rng)
    outputs = jax.eval_shape(self.head_apply, head_shapes, self._example(), jnp.zeros((1,), jnp.int32))
    f_h, cache = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), outputs)
    return self.tail.init(rng, f_h, cache)["params"]

  def head_apply(self, params, x, timesteps, noise_rng=None):
    """Client: patches in [-1, 1] → (f_H, cache of skips and time vector). `noise_rng`: the
    client's private key for the f_H noise defence, given only for what is sent in training."""
    f_h, cache = self.head.apply({"params": params}, x, timesteps)
    if self.feature_clip > 0:
      f_h = clip_tokens(f_h, self.feature_clip)
      if self.feature_noise > 0 and noise_rng is not None:
        noise = jax.random.normal(noise_rng, f_h.shape, jnp.float32)
        f_h = f_h + (self.feature_noise * self.feature_clip * noise).astype(f_h.dtype)
    return f_h, (dict(cache, input=x) if self.residual else cache)

  def body_apply(self, params, f_h, dropout_rng=None, keep=None, task=None):
    """Server: f_H → f_B; dropout is active exactly when a `dropout_rng` is given. `keep`
    (B, h·w) marks the tokens a client sent; the others are the body's mask token. `task`:
    the client's task id, read only by SCA-MTL's neck."""
    if dropout_rng is None:
      return self.body.apply({"params": params}, f_h, deterministic=True, keep=keep, task=task)
    return self.body.apply({"params": params}, f_h, deterministic=False, keep=keep, task=task,
                           rngs={"dropout": dropout_rng})

  def tail_apply(self, params, f_b, cache):
    """Client: f_B and the cache → restored patches in [-1, 1]."""
    out = self.tail.apply({"params": params}, f_b, cache)
    return out + cache["input"] if self.residual else out

  def apply(self, params, x, timesteps, dropout_rng=None, task=None):
    """The whole network, `params = {'head', 'body', 'tail'}`."""
    f_h, cache = self.head_apply(params["head"], x, timesteps)
    f_b = self.body_apply(params["body"], f_h, dropout_rng, task=task)
    return self.tail_apply(params["tail"], f_b, cache)


def clip_tokens(f_h, rms: float):
  """Each token (B, h, w, C)[b, i, j] scaled down so its RMS over channels is at most `rms`."""
  norm = jnp.sqrt(jnp.mean(jnp.square(f_h.astype(jnp.float32)), axis=-1, keepdims=True))
  return (f_h * jnp.minimum(1.0, rms / jnp.maximum(norm, 1e-12))).astype(f_h.dtype)


def build(config: ml_collections.ConfigDict, patch_size: int) -> Model:
  """The model of a `config.model` section (see configs/default.py)."""
  if config.time_conditioning not in TIME_CONDITIONING:
    raise TavitError(f"model.time_conditioning must be one of {TIME_CONDITIONING}, "
                     f"not {config.time_conditioning!r}")
  pos_emb = config.get("pos_emb", "server")
  if pos_emb not in POS_EMB:
    raise TavitError(f"model.pos_emb must be one of {POS_EMB}, not {pos_emb!r}")
  dtype_name = config.get("dtype", "float32")
  if dtype_name not in DTYPES:
    raise TavitError(f"model.dtype must be one of {tuple(DTYPES)}, not {dtype_name!r}")
  dtype = DTYPES[dtype_name]
  neck = config.get("neck", "none")
  if neck not in NECKS:
    raise TavitError(f"model.neck must be one of {NECKS}, not {neck!r}")
  shared = dict(dim=config.dim, dim_mults=tuple(config.dim_mults), groups=config.groups,
                attn_heads=config.attn_heads, attn_head_dim=config.attn_head_dim, dtype=dtype)
  downsample = 2 ** (len(config.dim_mults) - 1)
  if patch_size % downsample:
    raise TavitError(f"data.patch_size {patch_size} must be a multiple of {downsample}")
  feature_clip, feature_noise = (float(config.get("feature_clip", 0.0)),
                                 float(config.get("feature_noise", 0.0)))
  if not (feature_clip >= 0 and feature_noise >= 0) or (feature_noise > 0 and not feature_clip):
    raise TavitError(f"model.feature_clip and model.feature_noise must be >= 0, and the noise "
                     f"needs a clip (got feature_clip={feature_clip}, feature_noise={feature_noise})")
  body = Body(layers=config.body_layers, heads=config.body_heads, mlp_dim=config.body_mlp_dim,
              dropout=config.body_dropout, dtype=dtype, position_embedding=pos_emb == "server",
              mask_token=config.get("mask_token", False),
              neck_tasks=config.get("neck_tasks", 4) if neck == "sca_mtl" else 0)
  tail = Tail(**shared, zero_init_out=config.residual,
              full_res_skip=config.get("full_res_skip", False))
  return Model(Head(**shared, position_embedding=pos_emb == "client"), body, tail, patch_size,
               config.time_conditioning, config.residual, feature_clip, feature_noise)


def paper_config() -> ml_collections.ConfigDict:
  """The official model's sizes (44,905,865 parameters)."""
  return ml_collections.ConfigDict(dict(
      dim=128, dim_mults=(1, 2, 4), groups=8, attn_heads=4, attn_head_dim=32,
      body_layers=8, body_heads=8, body_mlp_dim=1024, body_dropout=0.1,
      time_conditioning="fixed", residual=False, full_res_skip=False, dtype="float32",
      # server (official) | client (p-FeSTA) | none (no positions sent); docs/design.md §4.2.
      pos_emb="server",
      mask_token=False,  # True: the body learns a filler for punched tokens (docs/design.md §4.3).
      feature_clip=0.0,  # > 0: each f_H token's RMS clipped to this (a defence; not official).
      feature_noise=0.0))  # > 0: Gaussian noise of this × feature_clip on f_H sent in training.


def tiny_config() -> ml_collections.ConfigDict:
  """A CPU-sized variant of the same code: dim 16, body width 64, 2 layers of 4 heads."""
  config = paper_config()
  config.update(dim=16, attn_head_dim=8, body_layers=2, body_heads=4, body_mlp_dim=128,
                body_dropout=0.0)
  return config


def count_params(params) -> int:
  return sum(x.size for x in jax.tree_util.tree_leaves(params))
