"""One TAViT training step: tavit_jax (jit) against PyTorch eager, and the matmul peak.

  python benchmarks/step.py [--model=paper] [--batch=4] [--repeats=5] [--parts]
      [--variants=default,native_upsample] [--threads=N] [--no-torch]
      [--dtype=bfloat16] [--torch-device=cuda] [--peak-tflops=989.4]

A step is head → body → tail forward and backward of the MSE loss, then Adam (betas 0.5,
0.999) on all three parts, in train mode (body dropout on) — what the joint step does for
one client. Contenders run interleaved in one process (A, B, A, B, ...) after one warm-up
call each, so their ratio survives a busy machine; medians are reported. The peak is the
best of a large float32 matrix product in jnp and torch, measured in the same run.
`--variants` times tavit_jax model variants side by side (see `VARIANTS`). Needs the
`bench` extra (torch). Nothing here is a test.
"""

import argparse
import functools
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tavit_jax import models
from tavit_jax.models import conv, layers, tail as tail_module
from timing import interleaved, load  # benchmarks/timing.py, beside this file.

REFERENCE_GFLOP_PER_PATCH = 99.2  # docs/design.md §1.6: paper model fwd + bwd, XLA count.
PATCH = 64


# Each variant: the (module, attribute) values it swaps in while the model is traced.
VARIANTS = {
    "default": {},
    # The tail with XLA's own transposed convolution (the pre-sub-pixel model).
    "native_upsample": {(tail_module, "Upsample"): functools.partial(layers.Upsample,
                                                                     subpixel=False)},
    # Every 3×3 convolution and both its gradients as XLA's own (before issue 19).
    "xla_conv": {(conv, "choose_forms"): lambda *channels: ("xla",) * 3},
    # The CPU's choice (nine-tap kernel gradients) on any backend: to time it on a GPU.
    "cpu_conv": {(conv, "choose_forms"): functools.partial(conv.choose_forms, backend="cpu")},
}


def build_model(name: str, dtype: str) -> models.Model:
  config = models.paper_config() if name == "paper" else models.tiny_config()
  config.dtype = dtype
  return models.build(config, PATCH)


def with_variant(patches: dict, fn):
  """Runs `fn` (which traces the model) with the variant's values swapped in."""
  def wrapped(*args):
    originals = {key: getattr(*key) for key in patches}
    for (module, name), value in patches.items():
      setattr(module, name, value)
    try:
      return fn(*args)
    finally:
      for (module, name), value in originals.items():
        setattr(module, name, value)
  return wrapped


# ----------------------------------------------------------------------------- tavit_jax
class JaxStep:
  """A full jitted, donated step and the three parts' forward + backward."""

  def __init__(self, model_name, variant, batch, dtype="float32"):
    model = build_model(model_name, dtype)
    patches = VARIANTS[variant]
    self.model = model
    keys = jax.random.split(jax.random.key(0), 4)
    init = with_variant(patches, lambda: {"head": model.init_head(keys[0]),
                                          "body": model.init_body(keys[1]),
                                          "tail": model.init_tail(keys[2])})
    self.params = init()
    self.tx = optax.adam(3e-5, b1=0.5, b2=0.999)
    self.opt = self.tx.init(self.params)
    rng = np.random.default_rng(0)
    self.x = jnp.asarray(rng.uniform(-1, 1, (batch, PATCH, PATCH, 3)), jnp.float32)
    self.y = jnp.asarray(rng.uniform(-1, 1, (batch, PATCH, PATCH, 3)), jnp.float32)
    self.t = jnp.zeros((batch,), jnp.int32)
    self.key = jax.random.key(1)

    def loss_fn(params, x, y, t, key):
      out = model.apply(params, x, t, key)
      return jnp.mean(jnp.square(out.astype(jnp.float32) - y))

    def step(params, opt, x, y, t, key):
      loss, grads = jax.value_and_grad(loss_fn)(params, x, y, t, key)
      updates, opt = self.tx.update(grads, opt, params)
      return optax.apply_updates(params, updates), opt, loss

    self._step = jax.jit(with_variant(patches, step), donate_argnums=(0, 1))
    self.lowered = jax.jit(with_variant(patches, step)).lower(
        self.params, self.opt, self.x, self.y, self.t, self.key)

    # Parts: forward + backward with fixed random cotangents (what the neighbours send).
    f_h, cache = with_variant(patches, model.head_apply)(self.params["head"], self.x, self.t)
    self.f_h, self.cache = f_h, cache
    ct = lambda tree: jax.tree_util.tree_map(
        lambda a: jnp.asarray(rng.standard_normal(a.shape), a.dtype), tree)
    self.head_ct, self.f_b_ct = ct((f_h, cache)), ct(f_h)

    def head_part(head, x, t, cts):
      _, vjp = jax.vjp(lambda h: model.head_apply(h, x, t), head)
      return vjp(cts)

    def body_part(body, f_h, key, ct_b):
      _, vjp = jax.vjp(lambda b, f: model.body_apply(b, f, key), body, f_h)
      return vjp(ct_b)

    def tail_part(tail, f_b, cache, y):
      return jax.value_and_grad(
          lambda p, f, c: jnp.mean(jnp.square(model.tail_apply(p, f, c) - y)),
          argnums=(0, 1, 2))(tail, f_b, cache)

    params = jax.tree_util.tree_map(jnp.copy, self.params)  # The step donates its own.
    self._parts = {
        "head": (jax.jit(with_variant(patches, head_part)),
                 (params["head"], self.x, self.t, self.head_ct)),
        "body": (jax.jit(body_part), (params["body"], f_h, self.key, self.f_b_ct)),
        "tail": (jax.jit(with_variant(patches, tail_part)),
                 (params["tail"], f_h, cache, self.y)),
    }

  def step(self):
    self.params, self.opt, loss = self._step(self.params, self.opt, self.x, self.y, self.t,
                                             self.key)
    loss.block_until_ready()

  def part(self, name):
    fn, args = self._parts[name]
    jax.block_until_ready(fn(*args))

  def flops(self) -> float:
    """XLA's cost analysis of the compiled step, in FLOP."""
    cost = self.lowered.compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", float("nan")))


# ----------------------------------------------------------------------------- PyTorch
class TorchStep:
  """The same network from tests/torch_reference.py, eager, Adam on all parameters.

  On a GPU ('cuda') it matches JAX's defaults: TF32 matrix products in float32, and
  bfloat16 through autocast (float32 parameters, as tavit_jax's compute dtype)."""

  def __init__(self, model_name, batch, device="cpu", dtype="float32"):
    import contextlib  # pylint: disable=g-import-not-at-top
    import torch  # pylint: disable=g-import-not-at-top
    from timing import torch_network  # pylint: disable=g-import-not-at-top
    self.torch = torch
    if device == "cuda":
      torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    self.sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    self.autocast = (functools.partial(torch.autocast, device, dtype=torch.bfloat16)
                     if dtype == "bfloat16" else contextlib.nullcontext)
    config = models.paper_config() if model_name == "paper" else models.tiny_config()
    self.head, self.body, self.tail = (m.train().to(device)
                                       for m in torch_network(config, PATCH))
    params = [p for m in (self.head, self.body, self.tail) for p in m.parameters()]
    self.opt = torch.optim.Adam(params, lr=3e-5, betas=(0.5, 0.999))
    self.x = torch.rand(batch, 3, PATCH, PATCH, device=device) * 2 - 1
    self.y = torch.rand(batch, 3, PATCH, PATCH, device=device) * 2 - 1
    self.t = torch.zeros(batch, dtype=torch.long, device=device)
    with torch.no_grad(), self.autocast():
      f_h, time_vec, skips = self.head(self.x, self.t)
    self.f_h, self.time_vec, self.skips = f_h, time_vec, skips
    self.head_ct = [torch.randn_like(a) for a in (f_h, time_vec, *skips)]
    self.f_b_ct = torch.randn_like(f_h)

  def step(self):
    self.opt.zero_grad(set_to_none=True)
    with self.autocast():
      f_h, time_vec, skips = self.head(self.x, self.t)
      out = self.tail(self.body(f_h), time_vec, skips)
      loss = self.torch.mean(self.torch.square(out.float() - self.y))
    loss.backward()
    self.opt.step()
    self.sync()

  def part(self, name):
    torch = self.torch
    with self.autocast():
      if name == "head":
        outs = self.head(self.x, self.t)
        torch.autograd.backward([outs[0], outs[1], *outs[2]], self.head_ct)
      elif name == "body":
        f_h = self.f_h.detach().requires_grad_()
        torch.autograd.backward(self.body(f_h), self.f_b_ct)
      else:
        f_b = self.f_h.detach().requires_grad_()
        skips = [s.detach().requires_grad_() for s in self.skips]
        time_vec = self.time_vec.detach().requires_grad_()
        out = self.tail(f_b, time_vec, skips)
        torch.mean(torch.square(out.float() - self.y)).backward()
    for module in (self.head, self.body, self.tail):
      module.zero_grad(set_to_none=True)
    self.sync()

  def flops(self) -> float:
    """PyTorch's FlopCounterMode count of one step's forward and backward, in FLOP."""
    from torch.utils.flop_counter import FlopCounterMode  # pylint: disable=g-import-not-at-top
    counter = FlopCounterMode(display=False)
    with counter:
      f_h, time_vec, skips = self.head(self.x, self.t)
      out = self.tail(self.body(f_h), time_vec, skips)
      self.torch.mean(self.torch.square(out - self.y)).backward()
    for module in (self.head, self.body, self.tail):
      module.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


# ----------------------------------------------------------------------------- timing
def matmul_peak(size: int, repeats: int, torch_device, dtype: str) -> dict:
  """Best GFLOP/s of a size×size matrix product in `dtype`, jnp (and torch on
  `torch_device`, None: no torch)."""
  flop = 2 * size ** 3
  a = jax.random.normal(jax.random.key(0), (size, size), dtype)
  mm = jax.jit(jnp.dot)
  mm(a, a).block_until_ready()
  fns = {"jnp": lambda: mm(a, a).block_until_ready()}
  if torch_device:
    import torch  # pylint: disable=g-import-not-at-top
    b = torch.randn(size, size, device=torch_device, dtype=getattr(torch, dtype))
    sync = torch.cuda.synchronize if torch_device == "cuda" else (lambda: None)
    torch.mm(b, b)
    fns["torch"] = lambda: (torch.mm(b, b), sync())
  best = {name: 0.0 for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      start = time.perf_counter()
      fn()
      best[name] = max(best[name], flop / (time.perf_counter() - start) / 1e9)
  return best


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model", choices=("paper", "tiny"), default="paper")
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--parts", action="store_true", help="also time head/body/tail fwd+bwd")
  parser.add_argument("--variants", default="default",
                      help=f"comma-separated tavit_jax variants: {', '.join(VARIANTS)}")
  parser.add_argument("--dtype", default="float32", help="tavit_jax compute dtype")
  parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: default)")
  parser.add_argument("--matmul", type=int, default=2048, help="side of the peak matmul")
  parser.add_argument("--no-torch", dest="torch", action="store_false")
  parser.add_argument("--torch-device", default="cpu", help="cpu | cuda (PyTorch's device)")
  parser.add_argument("--peak-tflops", type=float, default=0.0,
                      help="the accelerator's stated peak in the run's dtype: adds an MFU column")
  args = parser.parse_args()

  if args.torch:
    import torch  # pylint: disable=g-import-not-at-top
    if args.threads:
      torch.set_num_threads(args.threads)
  load_before = load()
  variants = args.variants.split(",")
  contenders = {f"tavit_jax ({v})" if len(variants) > 1 else "tavit_jax":
                JaxStep(args.model, v, args.batch, args.dtype) for v in variants}
  if args.torch:
    contenders["PyTorch eager"] = TorchStep(args.model, args.batch, args.torch_device,
                                            args.dtype)
  torch_device = args.torch_device if args.torch else None

  peak = matmul_peak(args.matmul, 5, torch_device, args.dtype)
  step_times = interleaved({n: c.step for n, c in contenders.items()}, args.repeats)
  part_times = {}
  if args.parts:
    part_times = interleaved({(n, p): functools.partial(c.part, p)
                              for p in ("head", "body", "tail") for n, c in contenders.items()},
                             args.repeats)
  peak_after = matmul_peak(args.matmul, 5, torch_device, args.dtype)
  peak = {k: max(peak[k], peak_after[k]) for k in peak}
  best_peak = max(peak.values())

  first = next(iter(contenders.values()))
  xla_flop = first.flops()
  torch_flop = contenders["PyTorch eager"].flops() if args.torch else float("nan")
  flop = (REFERENCE_GFLOP_PER_PATCH * 1e9 * args.batch if args.model == "paper" else xla_flop)

  print(f"\n`python benchmarks/step.py {' '.join(os.sys.argv[1:])}`\n")
  print(f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"jax {jax.__version__} ({jax.default_backend()})"
        + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if args.torch else ""))
  print(f"- load average (1/5/15 min): {load_before} at start, {load()} at end")
  print(f"- model {args.model}, batch {args.batch} of {PATCH}×{PATCH}, {args.repeats} interleaved "
        f"repeats, tavit_jax dtype {args.dtype}")
  print(f"- matmul peak ({args.matmul}², {args.dtype}): "
        + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items()))
  print(f"- FLOP per patch: XLA cost analysis {xla_flop / args.batch / 1e9:.1f} G, "
        f"torch FlopCounterMode {torch_flop / args.batch / 1e9:.1f} G (matmul/conv only), "
        f"reference {REFERENCE_GFLOP_PER_PATCH} G; rates below use "
        f"{flop / args.batch / 1e9:.1f} G\n")
  reference = statistics.median(step_times["PyTorch eager"]) if args.torch else None
  mfu = args.peak_tflops > 0
  print("| implementation | median s/step | min s/step | GFLOP/s | % of matmul peak | "
        + (f"MFU (of {args.peak_tflops:g} TFLOP/s) | " if mfu else "") + "speed vs PyTorch |")
  print("|---|---|---|---|---|" + ("---|" if mfu else "") + "---|")
  for name, times in step_times.items():
    med = statistics.median(times)
    ratio = f"{reference / med:.2f}×" if reference else "–"
    utilisation = f"{100 * flop / med / 1e12 / args.peak_tflops:.1f}% | " if mfu else ""
    print(f"| {name} | {med:.3g} | {min(times):.3g} | {flop / med / 1e9:.0f} | "
          f"{100 * flop / med / 1e9 / best_peak:.0f}% | {utilisation}{ratio} |")
  if part_times:
    names = list(contenders)
    print("\nForward + backward by part, median seconds:\n")
    print("| part | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for part in ("head", "body", "tail"):
      print(f"| {part} | " + " | ".join(
          f"{statistics.median(part_times[(n, part)]):.3g}" for n in names) + " |")


if __name__ == "__main__":
  main()
