"""The server's JSON-lines logs in its workdir: events, steps and bytes on the wire.

- events.jsonl: joins, failures, rejections, resumes — what an operator must see;
- steps.jsonl: per step its phase, wall time and each client's loss;
- wire.jsonl: per step and client the bytes each way, logged and predicted.
Events are also logged (the SuperLink streams the ServerApp's log to `flwr run --stream`).
`summarize` reads them back: seconds and bytes per step of a run.
"""

import collections
import json
import logging
import os
import time

import numpy as np

log = logging.getLogger("tavit_jax.flower.server")


class Records:

  def __init__(self, workdir: str):
    os.makedirs(workdir, exist_ok=True)
    self._files = {name: open(os.path.join(workdir, f"{name}.jsonl"), "a", buffering=1)
                   for name in ("events", "steps", "wire")}
    # (step, client) -> counters of bytes, filled as messages go and come.
    self._wire = collections.defaultdict(collections.Counter)

  def _write(self, name: str, row: dict) -> None:
    self._files[name].write(json.dumps(row) + "\n")

  def event(self, kind: str, message: str, level: int = logging.INFO, **fields) -> None:
    log.log(level, "%s", message)
    self._write("events", {"time": time.time(), "event": kind, "message": message, **fields})

  def step(self, **row) -> None:
    self._write("steps", {"time": time.time(), **row})

  def count_bytes(self, step, client: int, direction: str, payload: int, serialized: int,
                  messages: int = 0) -> None:
    counter = self._wire[(step, client)]
    counter[f"{direction}_payload"] += payload
    counter[f"{direction}_serialized"] += serialized
    counter[f"{direction}_messages"] += messages

  def flush_wire(self, step, phase: str, predicted: dict[int, dict]) -> None:
    """One row per client of `step`; `predicted[client]` = {'up': bytes, 'down': bytes}."""
    for (s, client) in sorted(k for k in self._wire if k[0] == step):
      counts = self._wire.pop((s, client))
      row = {"step": step, "phase": phase, "client": client, **counts}
      if client in predicted:
        row.update(up_predicted=predicted[client]["up"], down_predicted=predicted[client]["down"])
      self._write("wire", row)

  def close(self) -> None:
    for f in self._files.values():
      f.close()


def read_jsonl(path: str) -> list[dict]:
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def stats(workdir: str) -> dict:
  """Per phase kind: median seconds per step, and per client and step the payload and
  serialized bytes each way next to the protocol's prediction."""
  steps = read_jsonl(os.path.join(workdir, "steps.jsonl"))
  wire = [r for r in read_jsonl(os.path.join(workdir, "wire.jsonl")) if "up_predicted" in r]
  out = {}
  for phase in ("client", "server"):
    seconds = [s["seconds"] for s in steps if s["phase"] == phase]
    rows = [r for r in wire if r["phase"] == phase]
    if not seconds:
      continue
    mean = lambda key: float(np.mean([r.get(key, 0) for r in rows])) if rows else 0.0
    keys = [f"{direction}_{what}" for direction in ("up", "down")
            for what in ("payload", "serialized", "predicted")]
    out[phase] = {"steps": len(seconds), "median_seconds": float(np.median(seconds)),
                  **{key: mean(key) for key in keys}}
  return out


def _transfers(workdir: str) -> list[str]:
  """The single round's one upload and one download: per client, logged against predicted."""
  wire = read_jsonl(os.path.join(workdir, "wire.jsonl"))
  steps = [s for s in read_jsonl(os.path.join(workdir, "steps.jsonl")) if s["phase"] == "dino"]
  lines = []
  for name, direction in (("upload", "up"), ("download", "down")):
    rows = [r for r in wire if r["step"] == name and f"{direction}_predicted" in r]
    if rows:
      payload = sorted({r[f"{direction}_payload"] for r in rows})
      predicted = sorted({r[f"{direction}_predicted"] for r in rows})
      lines.append(f"{name}: {len(rows)} clients, {payload} B each ({predicted} predicted), "
                   f"{max(r[f'{direction}_messages'] for r in rows)} messages at most "
                   "(held requests included)")
  if steps:
    lines.append(f"self-distillation: {len(steps)} steps, median "
                 f"{float(np.median([s['seconds'] for s in steps])):.2f} s/step")
  return lines


def summarize(workdir: str) -> str:
  lines = _transfers(workdir)
  for phase, s in stats(workdir).items():
    lines.append(
        f"{phase} phase: {s['steps']} steps, median {s['median_seconds']:.2f} s/step; per client "
        f"and step ↑ {s['up_payload']:.0f} B payload ({s['up_serialized']:.0f} B serialized, "
        f"{s['up_predicted']:.0f} B predicted), ↓ {s['down_payload']:.0f} B "
        f"({s['down_serialized']:.0f}, {s['down_predicted']:.0f} predicted)")
  return "\n".join(lines) or "no steps logged"
