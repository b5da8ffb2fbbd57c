"""The server's JSON-lines logs in its workdir: events, steps and bytes on the wire.

- events.jsonl: joins, failures, rejections, resumes — what an operator must see;
- steps.jsonl: per step its phase, wall time and each client's loss;
- wire.jsonl: per step and client the bytes each way, logged and predicted.
Events are also logged (the SuperLink streams the ServerApp's log to `flwr run --stream`).
"""

import collections
import json
import logging
import os
import time

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
