"""Building blocks shared by the head (UNet encoder) and tail (UNet decoder), docs/design.md §1.2.

Shapes and initialisation-independent structure follow the official PyTorch modules so
that parameter counts and imported checkpoints match exactly. Layout is NHWC. `dtype` is
the compute dtype (None: float32 as the inputs); parameters stay float32.
"""

import math
from typing import Any

import einops
import flax.linen as nn
import jax
import jax.numpy as jnp

from tavit_jax.models import conv


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
  dtype: Any = None

  @nn.compact
  def __call__(self, timesteps):
    h = nn.Dense(4 * self.dim, dtype=self.dtype)(sinusoidal_embedding(timesteps, self.dim))
    return nn.Dense(self.dim, dtype=self.dtype)(mish(h))


class Conv3x3(nn.Module):
  """`nn.Conv(features, (3, 3), padding=1)` (same parameters, outputs and gradients) whose
  kernel gradient, on a CPU at 128+ channels, is nine tap products instead of XLA's
  slower one (`conv.choose_forms`; BENCHMARKS.md "Convolutions, layer by layer")."""

  features: int
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (3, 3, x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    forms = conv.choose_forms(x.shape[-1], self.features)
    return conv.conv3x3(x, kernel, forms) + bias


class Block(nn.Module):
  """Conv 3×3 → GroupNorm(8) → mish."""

  features: int
  groups: int = 8
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    x = Conv3x3(self.features, self.dtype, name="Conv_0")(x)
    return mish(nn.GroupNorm(num_groups=self.groups, epsilon=1e-5, dtype=self.dtype)(x))


class ResnetBlock(nn.Module):
  """Two Blocks with the time vector added in between, plus a (1×1-projected) residual."""

  features: int
  groups: int = 8
  dtype: Any = None

  @nn.compact
  def __call__(self, x, time):
    h = Block(self.features, self.groups, self.dtype)(x)
    h = h + nn.Dense(self.features, dtype=self.dtype)(mish(time))[:, None, None, :]
    h = Block(self.features, self.groups, self.dtype)(h)
    if x.shape[-1] != self.features:
      x = nn.Conv(self.features, (1, 1), dtype=self.dtype)(x)
    return h + x


class _Pointwise(nn.Module):
  """The parameters of a 1×1 `nn.Conv` (same names, shapes and initial values), used as a
  matrix so the attention below can contract them in its own layout."""

  features: int
  use_bias: bool = True

  @nn.compact
  def __call__(self, in_features: int):
    """(kernel as an (in, out) matrix, bias or None)."""
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (1, 1, in_features, self.features))
    bias = (self.param("bias", nn.initializers.zeros_init(), (self.features,))
            if self.use_bias else None)
    return kernel[0, 0], bias


class LinearAttention(nn.Module):
  """Linear attention: k softmaxed over positions, no scaling and no softmax on q.

  Computed channels-first, (batch, head, dim, position) like the official module: on
  XLA:CPU the positions-minor softmax and contractions run fwd + bwd 1.7-1.9× faster than
  1×1 convs and a positions-major layout (benchmarks/head_layers.py). Parameters are
  those of the two 1×1 convs ('Conv_0' to q|k|v, 'Conv_1' out).
  """

  heads: int = 4
  head_dim: int = 32
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    batch, height, width, channels = x.shape
    hidden = self.heads * self.head_dim
    w_qkv, _ = _Pointwise(3 * hidden, use_bias=False, name="Conv_0")(channels)
    w_out, b_out = _Pointwise(channels, name="Conv_1")(hidden)
    x, w_qkv, w_out, b_out = nn.dtypes.promote_dtype(x, w_qkv, w_out, b_out, dtype=self.dtype)
    # Channels split as (q|k|v, head, dim), heads major, as the official rearrange.
    w_qkv = w_qkv.reshape(channels, 3, self.heads, self.head_dim)
    qkv = einops.einsum(x.reshape(batch, height * width, channels), w_qkv,
                        "b n c, c t h d -> t b h d n")
    q, k, v = qkv[0], qkv[1], qkv[2]
    k = jax.nn.softmax(k.astype(jnp.float32), axis=-1).astype(k.dtype)
    context = einops.einsum(k, v, "b h d n, b h e n -> b h d e")
    out = einops.einsum(context, q, "b h d e, b h d n -> b h e n")
    out = einops.einsum(out, w_out.reshape(self.heads, self.head_dim, channels),
                        "b h e n, h e c -> b n c")
    return (out + b_out).reshape(batch, height, width, channels)


class ReZeroAttention(nn.Module):
  """x + g·LinearAttention(x) with g initialised to 0, so each block starts as identity."""

  heads: int = 4
  head_dim: int = 32
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    g = self.param("g", nn.initializers.zeros, ())
    attention = LinearAttention(self.heads, self.head_dim, self.dtype)(x)
    return x + g.astype(attention.dtype) * attention


class Downsample(nn.Module):
  """Conv 3×3, stride 2, padding 1: halves H and W."""

  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    return nn.Conv(x.shape[-1], (3, 3), strides=2, padding=1, dtype=self.dtype)(x)


class SubPixelConvTranspose(nn.Module):
  """PyTorch ConvTranspose2d(4, stride 2, padding 1) as four 2×2 convs, one per output phase.

  The parameters are those of `nn.ConvTranspose(features, (4, 4), strides=2,
  padding=((2, 2), (2, 2)), transpose_kernel=True)` (kernel HWOI, bias), and so are the
  outputs to float tolerance (a test pins both). Why: XLA:CPU runs the transposed conv as a
  conv over a zero-dilated input, three quarters of whose products are wasted, on a slow
  path (forward + backward 29-44× slower than this form at the paper's sizes; one 2×2 conv
  to 4·C channels was slower still; BENCHMARKS.md).
  """

  features: int
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", nn.initializers.lecun_normal(),
                        (4, 4, self.features, x.shape[-1]))
    bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    # Output row 2r + a sums input rows r + a - 1 + t (t = 0, 1) times kernel row 3 - a - 2t:
    # flipped, kernel row 2t + a, so a reshape splits it into (tap t, phase a).
    flipped = kernel[::-1, ::-1].reshape(2, 2, 2, 2, self.features, x.shape[-1])
    pad = ((1, 0), (0, 1))  # Phase 0 reads rows r - 1, r; phase 1 rows r, r + 1.
    phases = [[jax.lax.conv_general_dilated(
        x, flipped[:, a, :, b].transpose(0, 1, 3, 2), (1, 1), (pad[a], pad[b]),
        dimension_numbers=("NHWC", "HWIO", "NHWC")) for b in (0, 1)] for a in (0, 1)]
    out = jnp.stack([jnp.stack(row, axis=3) for row in phases], axis=2)  # (n, h, a, w, b, o)
    n, hgt, wid = x.shape[:3]
    return out.reshape(n, 2 * hgt, 2 * wid, self.features) + bias


class Upsample(nn.Module):
  """PyTorch ConvTranspose2d(4, stride 2, padding 1): exactly doubles H and W.

  `subpixel=False` runs the transposed convolution as written (same parameters and
  outputs); the default sub-pixel form is far faster on XLA:CPU (BENCHMARKS.md).
  """

  subpixel: bool = True
  dtype: Any = None

  @nn.compact
  def __call__(self, x):
    if self.subpixel:
      return SubPixelConvTranspose(x.shape[-1], self.dtype, name="ConvTranspose_0")(x)
    # PyTorch padding p of a transposed conv is padding k-1-p on the dilated input.
    return nn.ConvTranspose(x.shape[-1], (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
                            transpose_kernel=True, dtype=self.dtype)(x)
