"""Attacks on what crosses the wire: what an honest-but-curious server could rebuild of a
client's images from the f_H tokens it receives (the threat model: EXPERIMENTS.md, "Privacy: threat model and attack suite").

`views` says what the server sees; `decoders` trains image decoders from tokens; `positions`
recovers a shuffled token order (a probe with query access, clustering without); `jigsaw`
places tokens by their predicted neighbours; `inversion` searches for the patch whose f_H
matches; `suite` runs them all on one client.
"""
