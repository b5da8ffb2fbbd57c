"""Building blocks shared by the head (UNet encoder) and tail (UNet decoder), SPEC §1.

Shapes and initialisation-independent structure follow the official PyTorch modules so
that parameter counts and imported checkpoints match exactly. Layout is NHWC.
"""

import math

import einops
import flax.linen as nn
import jax
import jax.numpy as jnp


def mish(x):
  return x * jnp.tanh(jax.nn.softplus(x))


def sinusoidal_embedding(timesteps, dim: int):
  """[sin, cos] of `dim // 2` geometric frequencies, as the official SinusoidalPosEmb."""
  half = dim // 2
  freqs = jnp.exp(-math.log(10000.0) * jnp.arange(half) / (half - 1))
  angles = timesteps.astype(jnp.float32)[:, None] * freqs[None]
  return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class TimeMLP(nn.Module):
  """Integer timestep → sinusoidal(dim) → Dense(4·dim) → mish → Dense(dim)."""

  dim: int

  @nn.compact
  def __call__(self, timesteps):
    h = nn.Dense(4 * self.dim)(sinusoidal_embedding(timesteps, self.dim))
    return nn.Dense(self.dim)(mish(h))


class Block(nn.Module):
  """Conv 3×3 → GroupNorm(8) → mish."""

  features: int
  groups: int = 8

  @nn.compact
  def __call__(self, x):
    x = nn.Conv(self.features, (3, 3), padding=1)(x)
    return mish(nn.GroupNorm(num_groups=self.groups, epsilon=1e-5)(x))


class ResnetBlock(nn.Module):
  """Two Blocks with the time vector added in between, plus a (1×1-projected) residual."""

  features: int
  groups: int = 8

  @nn.compact
  def __call__(self, x, time):
    h = Block(self.features, self.groups)(x)
    h = h + nn.Dense(self.features)(mish(time))[:, None, None, :]
    h = Block(self.features, self.groups)(h)
    if x.shape[-1] != self.features:
      x = nn.Conv(self.features, (1, 1))(x)
    return h + x


class LinearAttention(nn.Module):
  """Linear attention: k softmaxed over positions, no scaling and no softmax on q."""

  heads: int = 4
  head_dim: int = 32

  @nn.compact
  def __call__(self, x):
    qkv = nn.Conv(3 * self.heads * self.head_dim, (1, 1), use_bias=False)(x)
    # Channels split as (q|k|v, head, dim), heads major, as the official rearrange.
    q, k, v = einops.rearrange(qkv, "b x y (three h d) -> three b (x y) h d", three=3, h=self.heads)
    k = jax.nn.softmax(k, axis=1)
    context = jnp.einsum("bnhd,bnhe->bhde", k, v)
    out = jnp.einsum("bhde,bnhd->bnhe", context, q)
    out = einops.rearrange(out, "b (x y) h e -> b x y (h e)", x=x.shape[1])
    return nn.Conv(x.shape[-1], (1, 1))(out)


class ReZeroAttention(nn.Module):
  """x + g·LinearAttention(x) with g initialised to 0, so each block starts as identity."""

  heads: int = 4
  head_dim: int = 32

  @nn.compact
  def __call__(self, x):
    g = self.param("g", nn.initializers.zeros, ())
    return x + g * LinearAttention(self.heads, self.head_dim)(x)


class Downsample(nn.Module):
  """Conv 3×3, stride 2, padding 1: halves H and W."""

  @nn.compact
  def __call__(self, x):
    return nn.Conv(x.shape[-1], (3, 3), strides=2, padding=1)(x)


class Upsample(nn.Module):
  """PyTorch ConvTranspose2d(4, stride 2, padding 1): exactly doubles H and W."""

  @nn.compact
  def __call__(self, x):
    # PyTorch padding p of a transposed conv is padding k-1-p on the dilated input.
    return nn.ConvTranspose(x.shape[-1], (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
                            transpose_kernel=True)(x)
