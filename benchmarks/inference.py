"""Inference throughput: patches per second of tavit_jax (jit) against PyTorch eager.

  python benchmarks/inference.py [--model=paper] [--batches=16,64,128] [--repeats=5] [--image=256]

Per batch size, interleaved in one process after one warm-up call each (medians):
- 'jax': the function `tavit-restore` jits (`Trained.restore_fn`: head → body → tail at a
  fixed timestep, no dropout) on float32 (batch, 64, 64, 3) patches;
- 'torch': tests/torch_reference.py's modules, eval mode, `torch.inference_mode()`.
Then one `restore_image` of an --image × --image photo at stride 16 (the paper's protocol)
per batch size, with each library's model inside the same numpy tiling, so the rows also
show what cutting and folding the patches costs. Needs the `bench` extra (torch).
Nothing here is a test.
"""

import argparse
import platform
import statistics

import jax
import jax.numpy as jnp
import numpy as np

from tavit_jax import models
from tavit_jax.evaluation import tiling
from timing import interleaved, load, torch_network  # benchmarks/timing.py, beside this file.

PATCH = 64


def jax_restorer(config):
  """(params, patches) -> patches, jitted, as `tavit-restore` runs a workdir's model."""
  model = models.build(config, PATCH)
  keys = jax.random.split(jax.random.key(0), 3)
  params = {"head": model.init_head(keys[0]), "body": model.init_body(keys[1]),
            "tail": model.init_tail(keys[2])}
  fn = jax.jit(lambda p, x: model.apply(p, x, jnp.zeros((x.shape[0],), jnp.int32)))
  return lambda patches: np.asarray(fn(params, patches))


def torch_restorer(config, threads: int):
  """The same network in PyTorch eager, NHWC numpy in and out like the jax one."""
  import torch  # pylint: disable=g-import-not-at-top
  if threads:
    torch.set_num_threads(threads)
  head, body, tail = (m.eval() for m in torch_network(config, PATCH))

  def restore(patches):
    with torch.inference_mode():
      x = torch.from_numpy(np.ascontiguousarray(patches.transpose(0, 3, 1, 2)))
      t = torch.zeros(x.shape[0], dtype=torch.long)
      f_h, time_vec, skips = head(x, t)
      return tail(body(f_h), time_vec, skips).numpy().transpose(0, 2, 3, 1)
  return restore


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", default="paper", choices=["paper", "tiny"])
  parser.add_argument("--batches", default="16,64,128")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--image", type=int, default=256, help="side of the restored photo")
  parser.add_argument("--threads", type=int, default=0, help="torch threads (0: its default)")
  args = parser.parse_args()
  config = models.paper_config() if args.model == "paper" else models.tiny_config()
  restorers = {"jax": jax_restorer(config), "torch": torch_restorer(config, args.threads)}
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (args.image, args.image, 3), np.uint8)
  per_image = tiling.count_patches(args.image, args.image, patch_size=PATCH, stride=16)

  print(f"{args.model} model, {platform.machine()}, {jax.devices()[0].platform}, "
        f"load {load()}; patches/s, medians of {args.repeats}")
  print("| batch | jax model | torch model | jax / torch | jax restore_image | "
        "torch restore_image | jax / torch |")
  print("|---|---|---|---|---|---|---|")
  for batch in map(int, args.batches.split(",")):
    patches = rng.uniform(-1, 1, (batch, PATCH, PATCH, 3)).astype(np.float32)
    model_times = interleaved({name: (lambda f=f: f(patches)) for name, f in restorers.items()},
                              args.repeats)
    image_times = interleaved(
        {name: (lambda f=f: tiling.restore_image(f, image, patch_size=PATCH, stride=16,
                                                 batch_size=batch))
         for name, f in restorers.items()}, max(1, args.repeats // 2))
    model_rate = {n: batch / statistics.median(t) for n, t in model_times.items()}
    image_rate = {n: per_image / statistics.median(t) for n, t in image_times.items()}
    print(f"| {batch} | {model_rate['jax']:.1f} | {model_rate['torch']:.1f} | "
          f"{model_rate['jax'] / model_rate['torch']:.2f}× | {image_rate['jax']:.1f} | "
          f"{image_rate['torch']:.1f} | {image_rate['jax'] / image_rate['torch']:.2f}× |")
  print(f"load {load()} at the end; {per_image} patches per {args.image}² image at stride 16")


if __name__ == "__main__":
  main()
