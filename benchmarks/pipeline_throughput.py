"""Training-pipeline throughput in 64×64 patch pairs per second, per task and mixed.

  python benchmarks/pipeline_throughput.py [--seconds=6] [--read_threads=0,1] [--workers=0,2]

"mixed" is what training consumes: one client per task, batches zipped and stacked. Each
row times the same number of seconds after a warm-up batch; the median of `--repeats`
timed windows is reported (the machine is shared: compare rows of one run only).
"""

import argparse
import os
import statistics
import time

from tavit_jax import roster
from tavit_jax.data import datasets, pipeline, tasks


def patches_per_second(dataset, patches_per_batch: int, seconds: float) -> float:
  iterator = iter(dataset)
  next(iterator)  # Warm-up: opens sources, starts workers, builds the blur bank.
  count, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    next(iterator)
    count += patches_per_batch
  return count / (time.perf_counter() - start)


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--seconds", type=float, default=6.0)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--read_threads", default="0,1", help="comma-separated read-thread counts per client")
  parser.add_argument("--workers", default="0,2", help="comma-separated worker-process counts")
  parser.add_argument("--batch_size", type=int, default=16)
  parser.add_argument("--patches_per_image", type=int, default=4)
  parser.add_argument("--data_dir", default=None)
  args = parser.parse_args()
  datasets.prepare("tavit_default", args.data_dir)
  kwargs = dict(batch_size=args.batch_size, patch_size=64, patches_per_image=args.patches_per_image,
                data_dir=args.data_dir)
  print(f"cores: {os.cpu_count()}, batch {args.batch_size} per client, "
        f"{args.patches_per_image} patches per decoded image, median of {args.repeats} x {args.seconds:.0f} s")
  print("| pipeline | read threads per client | worker processes | patches/s |\n|---|---|---|---|")
  settings = [(int(t), int(w)) for w in args.workers.split(",") for t in args.read_threads.split(",")]
  for threads, workers in settings:
    for name in tasks.TASKS + ("mixed",):
      clients = roster.assign_clients(list(tasks.TASKS) if name == "mixed" else [name])
      rates = [
          patches_per_second(
              pipeline.clients_dataset(clients, workers=workers, read_threads=threads, **kwargs),
              args.batch_size * len(clients), args.seconds)
          for _ in range(args.repeats)
      ]
      print(f"| {name} | {threads} | {workers} | {statistics.median(rates):.0f} |", flush=True)


if __name__ == "__main__":
  main()
