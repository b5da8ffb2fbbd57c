"""The TAViT protocol (SPEC §2) over Flower's Deployment Engine, as a thin adapter.

- `server_app`: the ServerApp; it owns the body, its optimizer, the schedule and FedAvg.
- `client_app`: the ClientApp; it relays each message to the client's `worker`, the
  long-lived process that owns the head, tail, optimizer state and data of one client.
- `launch`, `cli`: start SuperLink, SuperNodes and a run (`tavit-flower`).

Flower is an optional dependency (`pip install tavit_jax[flower]`); nothing else in
tavit_jax imports this package.
"""
