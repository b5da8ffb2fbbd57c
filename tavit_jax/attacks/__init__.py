"""Attacks on what crosses the wire: what an honest-but-curious server could rebuild of a
client's images from the f_H tokens it receives (docs/threat_model in EXPERIMENTS.md).

`views` says what the server sees; `decoders` trains image decoders from tokens; `positions`
recovers a shuffled token order (a probe with query access, clustering without); `jigsaw`
places tokens by their predicted neighbours; `suite` runs them all on one client.
"""
