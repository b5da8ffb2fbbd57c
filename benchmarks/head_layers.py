"""The paper head's building blocks, forward + backward, tavit_jax against PyTorch eager.

  python benchmarks/head_layers.py [--repeats=5] [--batch=4]

Finds where the head (the largest part of the step, BENCHMARKS.md) loses: each row is one
layer at the size where the head spends most of its time (level 0: 128 channels at 64×64,
level 1: 256 at 32×32), gradients with respect to the input and the parameters. Flax
modules of `tavit_jax.models.layers` against the official-structure modules of
`tests/torch_reference.py`, interleaved in one process; medians. Nothing here is a test.
"""

import argparse
import os
import statistics

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import torch

from timing import interleaved, load, torch_reference  # benchmarks/timing.py, beside this file.
from tavit_jax.models import layers

ref = torch_reference()


def jax_fwd_bwd(module, *inputs):
  """A jitted fn() doing forward + backward of `module` on `inputs` (params and input grads)."""
  params = module.init(jax.random.key(0), *inputs)
  grad = jax.jit(jax.grad(lambda p, *xs: jnp.sum(jnp.square(module.apply(p, *xs))),
                          argnums=(0, 1)))
  return lambda: jax.block_until_ready(grad(params, *inputs))


def torch_fwd_bwd(module, *inputs):
  inputs = [x.requires_grad_(x.is_floating_point()) for x in inputs]

  def run():
    module.zero_grad(set_to_none=True)
    torch.square(module(*inputs)).sum().backward()
  return run


class _Conv3x3(torch.nn.Module):
  def __init__(self, c):
    super().__init__()
    self.conv = torch.nn.Conv2d(c, c, 3, padding=1)

  def forward(self, x):
    return self.conv(x)


class _NormMish(torch.nn.Module):
  def __init__(self, c):
    super().__init__()
    self.norm = torch.nn.GroupNorm(8, c)

  def forward(self, x):
    return ref.Mish()(self.norm(x))


class _FlaxConv3x3(nn.Module):
  features: int

  @nn.compact
  def __call__(self, x):
    return nn.Conv(self.features, (3, 3), padding=1)(x)


class _FlaxNormMish(nn.Module):

  @nn.compact
  def __call__(self, x):
    return layers.mish(nn.GroupNorm(num_groups=8, epsilon=1e-5)(x))


def cases(batch: int):
  """(name, jax fn, torch fn) per layer and size."""
  rng = np.random.default_rng(0)
  for channels, side in ((128, 64), (256, 32)):
    x = rng.normal(size=(batch, side, side, channels)).astype(np.float32)
    time = rng.normal(size=(batch, 128)).astype(np.float32)
    xj, tj = jnp.asarray(x), jnp.asarray(time)
    xt, tt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), torch.from_numpy(time)
    size = f"{channels}@{side}²"
    yield (f"conv 3×3 {size}", jax_fwd_bwd(_FlaxConv3x3(channels), xj),
           torch_fwd_bwd(_Conv3x3(channels), xt.clone()))
    yield (f"GroupNorm + mish {size}", jax_fwd_bwd(_FlaxNormMish(), xj),
           torch_fwd_bwd(_NormMish(channels), xt.clone()))
    yield (f"ResnetBlock {size}", jax_fwd_bwd(layers.ResnetBlock(channels), xj, tj),
           torch_fwd_bwd(ref.ResnetBlock(channels, channels, time_emb_dim=128), xt.clone(),
                         tt.clone()))
    yield (f"LinearAttention {size}", jax_fwd_bwd(layers.LinearAttention(4, 32), xj),
           torch_fwd_bwd(ref.LinearAttention(channels, 4, 32), xt.clone()))
    yield (f"Downsample {size}", jax_fwd_bwd(layers.Downsample(), xj),
           torch_fwd_bwd(ref.Downsample(channels), xt.clone()))


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--batch", type=int, default=4)
  args = parser.parse_args()
  torch.manual_seed(0)
  print(f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load {load()}")
  print("| layer (fwd + bwd) | tavit_jax median s | PyTorch median s | jax / torch |")
  print("|---|---|---|---|")
  for name, jax_fn, torch_fn in cases(args.batch):
    times = interleaved({"jax": jax_fn, "torch": torch_fn}, args.repeats)
    j, t = statistics.median(times["jax"]), statistics.median(times["torch"])
    print(f"| {name} | {j:.4f} | {t:.4f} | {j / t:.2f} |", flush=True)
  print(f"load at end {load()}")


if __name__ == "__main__":
  main()
