"""Seconds and bytes per step of a Flower run, from the server's steps/wire logs."""

import json
import os

import numpy as np


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


def summarize(workdir: str) -> str:
  lines = []
  for phase, s in stats(workdir).items():
    lines.append(
        f"{phase} phase: {s['steps']} steps, median {s['median_seconds']:.2f} s/step; per client "
        f"and step ↑ {s['up_payload']:.0f} B payload ({s['up_serialized']:.0f} B serialized, "
        f"{s['up_predicted']:.0f} B predicted), ↓ {s['down_payload']:.0f} B "
        f"({s['down_serialized']:.0f}, {s['down_predicted']:.0f} predicted)")
  return "\n".join(lines) or "no steps logged"
