"""The server's view of its clients over Flower: who is who, message exchange, failures.

Node ids are Flower's; client indices are the experiment's. A client answers 'hello'
with its index (from its own config), so a client that restarts under a new node id is
recognised, and one that was only slow is greeted again and rejoins. Each client's part
of a step is a generator that yields requests and gets replies; the fleet runs all
clients' generators at once over `push_messages` / `pull_messages` (Flower's
`send_and_receive` polls every 3 s and cannot report which client failed). A client that does not answer within `reply_timeout`, or answers with
an error, is reported; then the fleet waits for it to rejoin (its generator restarts:
every request is idempotent) or goes on without it, as `on_client_failure` says.
"""

import logging
import time
from typing import Any, Callable, Generator

from flwr.serverapp import Grid

from tavit_jax.errors import TavitError
from tavit_jax.flower import settings, wire
from tavit_jax.flower.records import Records

ClientTask = Generator[tuple[str, dict, dict], tuple[dict, dict], Any]


class Rejected(Exception):
  """A reply the server refuses (wrong shape, dtype, non-finite values): the client
  sits out the step and nothing it sent is used."""


class Restart(Exception):
  """The client lost what this step needs (it restarted): redo its step from the start."""


class ClientGone(TavitError):
  """A failed client did not rejoin within `max_wait`."""


class Fleet:

  def __init__(self, grid: Grid, config, records: Records):
    self.grid, self.records = grid, records
    self.num_clients = len(config.clients)
    self.fingerprint = settings.fingerprint(config)
    self.settings = config.flower
    self.node_of: dict[int, int] = {}  # Client index -> live node id.
    self.ignored: set[int] = set()  # Nodes replaced by a newer one or running another config.
    self.hellos: dict[str, tuple[int, float]] = {}  # Message id -> (node id, sent at).
    self.greeted: dict[int, float] = {}  # Node id -> when it was last greeted.
    self._last_discovery = 0.0

  # Membership.
  def _discover(self) -> None:
    """Greets nodes that are not a client's live node (new ones, and failed ones again
    once per `reply_timeout`); their replies arrive through `_poll`."""
    now = self._last_discovery = time.time()
    busy = set(self.node_of.values()) | self.ignored | {n for n, _ in self.hellos.values()}
    due = [n for n in self.grid.get_node_ids() if n not in busy
           and now - self.greeted.get(n, -1e9) >= self.settings.reply_timeout]
    if due:
      ids = self.grid.push_messages([wire.request("hello", n, {}, {}) for n in due])
      self.hellos.update({i: (n, now) for i, n in zip(ids, due)})
      self.greeted.update({n: now for n in due})

  def _on_hello(self, node: int, reply) -> None:
    if reply.has_error():  # Not ready (its worker?): greeted again later.
      return
    config, _ = wire.parts(reply)
    index = int(config.get("client_index", -1))
    if config.get("fingerprint") != self.fingerprint or not 0 <= index < self.num_clients:
      self.ignored.add(node)
      self.records.event("foreign_node", f"node {node} (client {index}) runs another config "
                         f"(fingerprint {config.get('fingerprint')}, ours {self.fingerprint}); "
                         "ignored", logging.ERROR, node=node, client=index)
      return
    old = self.node_of.get(index)
    if old is not None and old != node:
      self.ignored.add(old)
    self.node_of[index] = node
    self.records.event("joined", f"client {index} ({config.get('name')}) is node {node}; "
                       f"last update at step {config.get('last_update')}",
                       client=index, node=node, last_update=config.get("last_update"))

  def _expire_hellos(self) -> None:
    """An unanswered hello is dropped; `_discover` greets that node again later."""
    for message_id, (_, sent) in list(self.hellos.items()):
      if time.time() - sent > self.settings.reply_timeout:
        del self.hellos[message_id]

  def connect(self) -> None:
    """Until every client has joined (or `start_timeout`)."""
    deadline = time.time() + self.settings.start_timeout
    while len(self.node_of) < self.num_clients:
      if time.time() > deadline:
        missing = sorted(set(range(self.num_clients)) - set(self.node_of))
        raise ClientGone(f"clients {missing} did not join within {self.settings.start_timeout} s")
      if time.time() - self._last_discovery > 1.0:
        self._discover()
      self._poll({})
      time.sleep(self.settings.poll_interval)

  def _poll(self, pending: dict) -> list:
    """Replies to step messages in `pending`; hello replies are handled here."""
    ids = list(pending) + list(self.hellos)
    replies = list(self.grid.pull_messages(ids)) if ids else []
    step_replies = []
    for reply in replies:
      reply_to = reply.metadata.reply_to_message_id
      if reply_to in self.hellos:
        node, _ = self.hellos.pop(reply_to)
        self._on_hello(node, reply)
      elif reply_to in pending:
        step_replies.append(reply)
    self._expire_hellos()
    return step_replies

  # Exchange.
  def run(self, step, tasks: dict[int, Callable[[bool], ClientTask]],
          next_step=None) -> dict[int, Any]:
    """Runs `tasks[k](fresh)` for each client k; returns the results of those that finished.

    `fresh=True` asks for a generator that uses nothing received before (after a failure).
    `step` labels events and byte counts; prefetched 'next_*' arrays count for `next_step`.
    """
    policy, timeout = self.settings.on_client_failure, self.settings.reply_timeout
    running: dict[int, ClientTask] = {}
    waiting: dict[int, float] = {}  # Client -> deadline.
    pending: dict[str, tuple[int, str, float]] = {}  # Message id -> (client, kind, sent at).
    outbox: list[tuple[int, tuple[str, dict, dict]]] = []
    results: dict[int, Any] = {}

    def advance(k: int, generator: ClientTask, reply=None) -> None:
      try:
        request = next(generator) if reply is None else generator.send(reply)
        outbox.append((k, request))
      except StopIteration as done:
        running.pop(k, None)
        results[k] = done.value
      except Rejected as e:
        running.pop(k, None)
        self.records.event("rejected", f"step {step}: rejected client {k}: {e}; it sits out "
                           "this step", logging.ERROR, step=step, client=k, reason=str(e))
      except Restart:
        start(k, fresh=True)

    def start(k: int, fresh: bool) -> None:
      running[k] = tasks[k](fresh)
      advance(k, running[k])

    def fail(k: int, reason: str) -> None:
      node = self.node_of.pop(k, None)  # Greeted again later: it may only have been slow.
      if node is not None:
        self.greeted[node] = time.time()
      running.pop(k, None)
      for message_id in [i for i, p in pending.items() if p[0] == k]:
        del pending[message_id]
      then = (f"waiting up to {self.settings.max_wait} s for it to rejoin" if policy == "wait"
              else "the step proceeds without it")
      self.records.event("client_failed", f"step {step}: client {k} (node {node}) {reason}; "
                         f"{then}", logging.WARNING, step=step, client=k, node=node, reason=reason)
      if policy == "wait":
        waiting[k] = time.time() + self.settings.max_wait

    for k in tasks:
      if k in self.node_of:
        start(k, fresh=False)
      elif policy == "wait":
        waiting[k] = time.time() + self.settings.max_wait
      else:
        self.records.event("absent", f"step {step}: client {k} is absent; the step proceeds "
                           "without it", step=step, client=k)
    while running or waiting:
      outbox[:] = [(k, request) for k, request in outbox if k in running]
      if outbox:
        messages = [wire.request(kind, self.node_of[k], config, arrays)
                     for k, (kind, config, arrays) in outbox]
        for (k, _), message in zip(outbox, messages):
          self._count(step, next_step, k, "down", message)
        for (k, request), message_id in zip(outbox, self.grid.push_messages(messages)):
          pending[message_id] = (k, request[0], time.time())
        outbox.clear()
      for reply in self._poll(pending):
        k, kind, _ = pending.pop(reply.metadata.reply_to_message_id)
        if k not in running:
          continue
        if reply.has_error():
          reason = reply.error.reason or f"error code {reply.error.code}"
          if "WorkerRefused" in reason:  # The client is alive and refused the request.
            running.pop(k, None)
            self.records.event("refused", f"step {step}: client {k} refused {kind}: {reason}; "
                               "it sits out this step", logging.ERROR, step=step, client=k,
                               reason=reason)
          else:
            fail(k, f"answered {kind} with an error: {reason}")
          continue
        self._count(step, next_step, k, "up", reply)
        advance(k, running[k], wire.parts(reply))
      for message_id, (k, kind, sent) in list(pending.items()):
        if time.time() - sent > timeout and message_id in pending:
          fail(k, f"did not answer {kind} within {timeout} s")
      if waiting:
        for k, deadline in list(waiting.items()):
          if k in self.node_of:
            del waiting[k]
            self.records.event("resumed", f"step {step}: client {k} rejoined; its step restarts",
                               step=step, client=k)
            start(k, fresh=True)
          elif time.time() > deadline:
            raise ClientGone(f"client {k} did not rejoin within {self.settings.max_wait} s")
        if time.time() - self._last_discovery > 1.0:
          self._discover()
      time.sleep(self.settings.poll_interval)
    return results

  def absent_clients(self) -> list[int]:
    return [k for k in range(self.num_clients) if k not in self.node_of]

  def rediscover(self) -> None:
    """Between steps: greet new nodes (a failed client that came back)."""
    if self.absent_clients() and time.time() - self._last_discovery > 1.0:
      self._discover()
    self._poll({})

  def _count(self, step, next_step, k: int, direction: str, message) -> None:
    """Bytes per step; a prefetched 'next_*' array counts for the step it belongs to."""
    sizes = wire.array_sizes(message)
    overhead = wire.serialized_bytes(message) - sum(s for _, s in sizes.values())
    self.records.count_bytes(step, k, direction, 0, overhead, messages=1)
    for name, (payload, serialized) in sizes.items():
      owner = next_step if name.startswith("next_") else step
      self.records.count_bytes(owner, k, direction, payload, serialized)
