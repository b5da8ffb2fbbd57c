"""The TAViT protocol (docs/design.md §2, §7) over Flower's Deployment Engine, as a thin adapter.

Server side:
- `server_app`: the ServerApp; it owns the schedule and FedAvg and drives the steps;
- `server`: the body, its optimizer, the step RNG and their checkpoints;
- `exchanges`: one step's messages with one client, and the server's arithmetic between them;
- `fleet`: which node is which client, sending and receiving, failures and rejoins;
- `records`: the server's logs (events, steps, bytes on the wire) and their summary.
Client side:
- `client_app`: the ClientApp; Flower starts it per message and it relays to the worker;
- `worker`: the long-lived process that owns one client's head, tail, optimizer and data.
Both: `settings` (the config both sides load), `wire` (the message format), `launch`
(SuperLink, SuperNodes, a run, or all of it on one machine for `tavit-flower local`).

Flower is an optional dependency (`pip install tavit_jax[flower]`); nothing else in
tavit_jax imports this package.
"""
