"""A client-phase round with K clients: one program over the client axis, or a loop.

  python benchmarks/clients.py [--clients=1,2,4,8] [--batch=4] [--repeats=5] [--model=tiny]

Per K, interleaved in one process (one warm-up call each, medians reported):
- 'steps vmap' / 'steps loop': `tavit_jax.training.steps.make_steps(...).client` with
  `client_map` 'vmap' (one program, vmap over the stacked axis) or 'loop' (one compiled
  per-client program called K times, client index traced);
- 'scan': one program, `lax.scan` over the stacked axis (clients in sequence);
- 'jitted single ×K': a Python loop calling a jitted single-client step on K states.
'K × single' is K times the median of one client's jitted step, timed in the same loop.
Nothing here is a test.
"""

import argparse
import os
import statistics

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from tavit_jax import models, roster
from tavit_jax.protocol import mse
from tavit_jax.training import state as state_lib, steps as steps_lib
from tavit_jax.training.step_parts import StepOptions
from timing import interleaved, load  # benchmarks/timing.py, beside this file.

PATCH = 64


def client_one(model, tx):
  """One client's step: head + tail gradients through the frozen body, one Adam step."""
  def step(head, tail, opt, body, x, y):
    def loss_fn(head, tail):
      t = jnp.zeros((x.shape[0],), jnp.int32)
      return mse(model.apply({"head": head, "body": body, "tail": tail}, x, t), y)
    loss, grads = jax.value_and_grad(loss_fn, argnums=(0, 1))(head, tail)
    params = {"head": head, "tail": tail}
    updates, opt = tx.update({"head": grads[0], "tail": grads[1]}, opt, params)
    params = optax.apply_updates(params, updates)
    return params["head"], params["tail"], opt, loss
  return step


def contenders(model, num_clients: int, batch_size: int) -> dict:
  tx = optax.adam(3e-5, b1=0.5, b2=0.999)
  opt_config = ml_collections.ConfigDict(dict(b1=0.5, b2=0.999, grad_clip=0.0, lr_decay="constant",
                                              lr_hold=0.0))
  client_tx = state_lib.optimizer(3e-5, opt_config)
  tasks = [f"task{k % 4}" for k in range(num_clients)]
  ids = roster.task_ids(tasks)
  rng = np.random.default_rng(0)
  batch = {name: jnp.asarray(rng.uniform(-1, 1, (num_clients, batch_size, PATCH, PATCH, 3)),
                             jnp.float32) for name in ("input", "target")}
  active = jnp.ones((num_clients,), bool)
  mesh = steps_lib.make_mesh()
  result = {}
  for client_map in ("vmap", "loop"):
    state = state_lib.init_state(model, tasks, client_tx, client_tx, jax.random.key(0))
    shardings = steps_lib.state_shardings(state, mesh, num_clients, client_map)
    state = jax.device_put(state, shardings)
    steps = steps_lib.make_steps(model, client_tx, client_tx, ids, shardings,
                                 StepOptions(client_map, dropout=False))
    holder = {"state": state}

    def run(steps=steps, holder=holder):
      holder["state"], metrics = steps.client(holder["state"], batch, active)
      metrics["loss"].block_until_ready()
    result[f"steps {client_map}"] = run

  one = client_one(model, tx)
  state = state_lib.init_state(model, tasks, tx, tx, jax.random.key(0))
  c, body = state["clients"], state["server"]["body"]
  stacked = {"head": c["head"], "tail": c["tail"], "opt": c["opt"]}

  def scan_round(stacked, body, x, y):
    def each(_, client):
      head, tail, opt, xk, yk = client
      head, tail, opt, loss = one(head, tail, opt, body, xk, yk)
      return None, ({"head": head, "tail": tail, "opt": opt}, loss)
    _, (new, losses) = jax.lax.scan(
        each, None, (stacked["head"], stacked["tail"], stacked["opt"], x, y))
    return new, losses

  scan_jit = jax.jit(scan_round, donate_argnums=0)
  scan_holder = {"s": jax.tree_util.tree_map(jnp.copy, stacked)}

  def run_scan():
    scan_holder["s"], losses = scan_jit(scan_holder["s"], body, batch["input"], batch["target"])
    losses.block_until_ready()
  result["scan"] = run_scan

  one_jit = jax.jit(one, donate_argnums=(0, 1, 2))
  per_client = [list(jax.tree_util.tree_map(lambda a, k=k: jnp.copy(a[k]),
                                            (c["head"], c["tail"], c["opt"])))
                for k in range(num_clients)]
  xs = [batch["input"][k] for k in range(num_clients)]
  ys = [batch["target"][k] for k in range(num_clients)]

  def run_loop(clients=range(num_clients)):
    for k in clients:
      head, tail, opt, loss = one_jit(*per_client[k], body, xs[k], ys[k])
      per_client[k] = [head, tail, opt]
    loss.block_until_ready()
  result["jitted single ×K"] = run_loop
  result["single"] = lambda: run_loop([0])
  return result


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--clients", default="1,2,4,8")
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--model", choices=("paper", "tiny"), default="tiny")
  args = parser.parse_args()
  config = models.paper_config() if args.model == "paper" else models.tiny_config()
  model = models.build(config, PATCH)
  load_before = load()
  rows = []
  for num_clients in [int(k) for k in args.clients.split(",")]:
    times = interleaved(contenders(model, num_clients, args.batch), args.repeats)
    medians = {name: statistics.median(t) for name, t in times.items()}
    rows.append((num_clients, medians))
    print(f"K={num_clients}: " + ", ".join(f"{n} {s:.3f}s" for n, s in medians.items()),
          flush=True)

  load_after = load()
  names = [n for n in rows[0][1] if n != "single"]
  print(f"\n`python benchmarks/clients.py {' '.join(os.sys.argv[1:])}`\n")
  print(f"- {os.cpu_count()} CPUs, jax {jax.__version__} ({jax.default_backend()}, "
        f"{jax.device_count()} device(s)); model {args.model}, batch {args.batch} per client, "
        f"{args.repeats} interleaved repeats")
  print(f"- load average (1/5/15 min): {load_before} at start, {load_after} at end\n")
  print("Median seconds per client-phase round; in brackets, the time over K × single:\n")
  print("| K | K × single | " + " | ".join(names) + " |")
  print("|---|---|" + "---|" * len(names))
  for num_clients, medians in rows:
    ideal = num_clients * medians["single"]
    print(f"| {num_clients} | {ideal:.3f} | " + " | ".join(
        f"{medians[n]:.3f} ({medians[n] / ideal:.2f}×)" for n in names) + " |")


if __name__ == "__main__":
  main()
