"""The tail's Upsample (ConvTranspose2d 4×4, stride 2, padding 1) forward + backward, by form.

  python benchmarks/upsample.py [--repeats=7]

Forms, all with the same kernel (4, 4, C, C) and outputs to float tolerance (checked here):
'native' is flax's nn.ConvTranspose (XLA conv over a zero-dilated input); 'four 2×2' is the
model's default (`layers.SubPixelConvTranspose`); 'one 2×2 → 4C' and '3×3 → 4C' are
rejected sub-pixel forms (one conv to all four phases, then depth-to-space). Paper sizes,
batch 4; interleaved in one process, one warm-up call each. Nothing here is a test.
"""

import argparse
import os
import statistics

import jax
import jax.numpy as jnp

from tavit_jax.models.layers import Upsample
from timing import interleaved, load  # benchmarks/timing.py, beside this file.

DN = ("NHWC", "HWIO", "NHWC")


def _phases(kernel):
  """(t_h, a, t_w, b, o, i): kernel row 2t + a after the flip, see SubPixelConvTranspose."""
  return kernel[::-1, ::-1].reshape(2, 2, 2, 2, *kernel.shape[2:])


def one_2x2(x, kernel, bias):
  c = kernel.shape[2]
  sub = _phases(kernel).transpose(0, 2, 5, 1, 3, 4).reshape(2, 2, x.shape[-1], 4 * c)
  y = jax.lax.conv_general_dilated(x, sub, (1, 1), ((1, 1), (1, 1)), dimension_numbers=DN)
  n, h, w = x.shape[:3]
  y = y.reshape(n, h + 1, w + 1, 2, 2, c)
  rows = [jnp.stack([y[:, a:a + h, b:b + w, a, b] for b in (0, 1)], axis=3) for a in (0, 1)]
  return jnp.stack(rows, axis=2).reshape(n, 2 * h, 2 * w, c) + bias


def three_by_three(x, kernel, bias):
  c, c_in = kernel.shape[2], x.shape[-1]
  flipped = _phases(kernel)
  w = jnp.zeros((3, 3, c_in, 2, 2, c), kernel.dtype)
  for a in (0, 1):
    for b in (0, 1):
      for th in (0, 1):
        for tw in (0, 1):
          w = w.at[a + th, b + tw, :, a, b, :].set(flipped[th, a, tw, b].T)
  y = jax.lax.conv_general_dilated(x, w.reshape(3, 3, c_in, 4 * c), (1, 1), ((1, 1), (1, 1)),
                                   dimension_numbers=DN)
  n, h, wd = x.shape[:3]
  return y.reshape(n, h, wd, 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * wd, c) + bias


def module(subpixel):
  layer = Upsample(subpixel=subpixel)
  return lambda x, k, b: layer.apply({"params": {"ConvTranspose_0": {"kernel": k, "bias": b}}}, x)


FORMS = {"native": module(False), "four 2×2 (default)": module(True),
         "one 2×2 → 4C": one_2x2, "3×3 → 4C": three_by_three}


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--repeats", type=int, default=7)
  args = parser.parse_args()
  load_before = load()
  fns = {}
  for channels, side in ((256, 16), (128, 32)):  # The tail's two Upsamples.
    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(keys[0], (4, side, side, channels))
    params = Upsample(subpixel=False).init(keys[1], x)["params"]["ConvTranspose_0"]
    k, b = params["kernel"], params["bias"] + 0.1
    ct = jax.random.normal(keys[2], (4, 2 * side, 2 * side, channels))
    reference = FORMS["native"](x, k, b)
    for name, form in FORMS.items():
      error = float(jnp.abs(form(x, k, b) - reference).max())
      assert error < 1e-4, (name, error)
      grad = jax.jit(jax.grad(lambda x, k, b, f=form, ct=ct: jnp.sum(f(x, k, b) * ct),
                              argnums=(0, 1, 2)))
      fns[(f"{channels}@{side}²", name)] = (
          lambda grad=grad, fn_args=(x, k, b): jax.block_until_ready(grad(*fn_args)))
  times = interleaved(fns, args.repeats)
  load_after = load()
  print(f"\n`python benchmarks/upsample.py {' '.join(os.sys.argv[1:])}`\n")
  print(f"- {os.cpu_count()} CPUs, jax {jax.__version__} ({jax.default_backend()}), batch 4, "
        f"{args.repeats} interleaved repeats")
  print(f"- load average (1/5/15 min): {load_before} at start, {load_after} at end\n")
  print("| input | form | median s (fwd + bwd) | min s |")
  print("|---|---|---|---|")
  for (size, name), t in times.items():
    print(f"| {size} | {name} | {statistics.median(t):.3f} | {min(t):.3f} |")


if __name__ == "__main__":
  main()
