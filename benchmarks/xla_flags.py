"""XLA:CPU backend flags against the default, on the training step of benchmarks/step.py.

  python benchmarks/xla_flags.py [--model=paper] [--batch=4] [--repeats=3] [--rounds=2]

XLA_FLAGS is read once per process, so flag settings cannot be interleaved inside one run:
each setting runs `step.py --no-torch` in its own process, settings alternate over
`--rounds`, and the table gives the median of the per-process medians and its ratio to
the default (> 1: the flag is faster). Quote it from a quiet machine only. Nothing here is
a test.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys

from timing import load  # benchmarks/timing.py, beside this file.

SETTINGS = {
    "default": "",
    "oneDNN": "--xla_cpu_use_onednn=true",
    "oneDNN fusions (dot, eltwise)": "--xla_cpu_experimental_onednn_fusion_type=dot,eltwise",
    "XNNPACK": "--xla_cpu_use_xnnpack=true",
    "XNNPACK greedy graph fusion":
        "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY",
}
_ROW = re.compile(r"^\| tavit_jax \| ([\d.]+) \|", re.MULTILINE)


def median_step(flags: str, args) -> float:
  """Median s/step of one step.py process run under `flags`."""
  step_py = os.path.join(os.path.dirname(os.path.abspath(__file__)), "step.py")
  command = [sys.executable, step_py, "--no-torch", f"--model={args.model}",
             f"--batch={args.batch}", f"--repeats={args.repeats}", "--matmul=512"]
  env = dict(os.environ, XLA_FLAGS=flags)
  done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
  found = _ROW.search(done.stdout)
  if done.returncode or not found:
    raise SystemExit(f"step.py failed under XLA_FLAGS={flags!r}:\n{done.stderr[-2000:]}")
  return float(found.group(1))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model", choices=("paper", "tiny"), default="paper")
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--repeats", type=int, default=3, help="timed steps per process")
  parser.add_argument("--rounds", type=int, default=2, help="processes per setting")
  args = parser.parse_args()

  load_before = load()
  times = {name: [] for name in SETTINGS}
  for _ in range(args.rounds):
    for name, flags in SETTINGS.items():
      times[name].append(median_step(flags, args))
      print(f"{name}: {times[name][-1]:.3f} s/step", file=sys.stderr)
  default = statistics.median(times["default"])
  print(f"\n`python benchmarks/xla_flags.py {' '.join(sys.argv[1:])}`\n")
  print(f"- model {args.model}, batch {args.batch}, {args.repeats} steps per process, "
        f"{args.rounds} processes per setting")
  print(f"- load average (1/5/15 min): {load_before} at start, {load()} at end\n")
  print("| XLA_FLAGS | median s/step | per process | speed vs default |")
  print("|---|---|---|---|")
  for name, flags in SETTINGS.items():
    median = statistics.median(times[name])
    label = f"{name} `{flags}`" if flags else name
    print(f"| {label} | {median:.2f} | {' '.join(f'{t:.2f}' for t in times[name])} | "
          f"{default / median:.2f}× |")


if __name__ == "__main__":
  main()
