"""Every 3×3 convolution shape of the head and tail: forward, input gradient and kernel
gradient, each in three XLA forms and in PyTorch (oneDNN), side by side.

  python benchmarks/conv_layers.py [--model=paper|tiny] [--batch=4] [--repeats=5]

Forms (all NHWC, kernel HWIO, SAME padding, stride 1):
  xla     lax.conv_general_dilated and the gradients XLA derives for it;
  im2col  the 3×3 neighbourhoods gathered into 9·C channels, then one matrix product
          (the kernel gradient is patchesᵀ · output-gradient, one long contraction);
  shift9  nine shifted 1×1 products summed (no 9× copy of the input).
Interleaved, medians; a table in milliseconds and each form's time over PyTorch's.
Nothing here is a test.
"""

import argparse
import platform
import statistics

import jax
import jax.numpy as jnp
import numpy as np

from tavit_jax.models import conv
from timing import interleaved, load  # benchmarks/timing.py, beside this file.


def head_tail_shapes(dim: int, mults=(1, 2, 4), patch: int = 64) -> list[tuple[int, int, int, int]]:
  """(in channels, out channels, side, how many) of every stride-1 3×3 conv, in order."""
  shapes, channels, side = [], 3, patch
  for level, mult in enumerate(mults):  # Head: two ResnetBlocks per level.
    out = dim * mult
    shapes += [(channels, out, side, 1), (out, out, side, 3)]
    channels = out
    if level < len(mults) - 1:
      side //= 2
  shapes += [(channels, channels, side, 4)]  # Head's middle: two ResnetBlocks.
  for level in reversed(range(1, len(mults))):  # Tail: two ResnetBlocks, then upsample.
    out = dim * mults[level - 1]
    shapes += [(channels, out, side, 1), (out, out, side, 3)]
    channels, side = out, side * 2
  shapes += [(channels, dim, side, 1)]  # The tail's last Block.
  merged = {}
  for cin, cout, s, n in shapes:
    merged[(cin, cout, s)] = merged.get((cin, cout, s), 0) + n
  return [(*key, n) for key, n in merged.items()]


def jax_contenders(batch, cin, cout, side):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(batch, side, side, cin)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(3, 3, cin, cout)) / np.sqrt(9 * cin), jnp.float32)
  g = jnp.asarray(rng.normal(size=(batch, side, side, cout)), jnp.float32)
  out = {}
  for form in conv.FORMS:
    fwd = jax.jit(lambda x, w, f=form: conv.forward(x, w, f))
    dgrad = jax.jit(lambda g, w, f=form: conv.input_grad(g, w, f))
    wgrad = jax.jit(lambda x, g, f=form: conv.kernel_grad(x, g, f))
    out[form] = {"forward": lambda f=fwd: f(x, w).block_until_ready(),
                 "input grad": lambda f=dgrad: f(g, w).block_until_ready(),
                 "kernel grad": lambda f=wgrad: f(x, g).block_until_ready()}
  return out


def torch_contenders(batch, cin, cout, side):
  import torch  # pylint: disable=g-import-not-at-top
  gen = torch.Generator().manual_seed(0)
  x = torch.randn(batch, cin, side, side, generator=gen)
  w = torch.randn(cout, cin, 3, 3, generator=gen) / np.sqrt(9 * cin)
  g = torch.randn(batch, cout, side, side, generator=gen)
  conv2d, grads = torch.nn.functional.conv2d, torch.nn.grad

  def run(fn):
    with torch.no_grad():
      fn()
  return {"forward": lambda: run(lambda: conv2d(x, w, padding=1)),
          "input grad": lambda: run(lambda: grads.conv2d_input(x.shape, w, g, padding=1)),
          "kernel grad": lambda: run(lambda: grads.conv2d_weight(x, w.shape, g, padding=1))}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", default="paper", choices=("paper", "tiny"))
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--no-torch", action="store_true")
  args = parser.parse_args()
  dim = 128 if args.model == "paper" else 16
  print(f"# {platform.node()} · {jax.devices()[0].device_kind} · load {load()} · "
        f"{args.model} model, batch {args.batch}, medians of {args.repeats}, ms")
  forms = list(conv.FORMS) + ([] if args.no_torch else ["torch"])
  print("| layer (×count) | op | " + " | ".join(forms) + " | best / torch |")
  print("|---|---|" + "---|" * len(forms) + "---|")
  for cin, cout, side, count in head_tail_shapes(dim):
    per_form = jax_contenders(args.batch, cin, cout, side)
    if not args.no_torch:
      per_form["torch"] = torch_contenders(args.batch, cin, cout, side)
    for op in ("forward", "input grad", "kernel grad"):
      times = interleaved({f: per_form[f][op] for f in forms}, args.repeats)
      ms = {f: 1e3 * statistics.median(t) for f, t in times.items()}
      best = min(conv.FORMS, key=ms.get)
      ratio = f"{best} {ms[best] / ms['torch']:.2f}" if "torch" in ms else best
      cells = " | ".join(f"{ms[f]:.1f}" for f in forms)
      print(f"| {cin}→{cout}@{side}² (×{count}) | {op} | {cells} | {ratio} |", flush=True)
  print(f"# load at end {load()}")


if __name__ == "__main__":
  main()
