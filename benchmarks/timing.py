"""What every benchmark here shares: interleaved timing and the machine's load."""

import os
import sys
import time


def interleaved(contenders: dict, repeats: int) -> dict:
  """Seconds per call of each contender, calls alternating (A, B, A, B, ...) after one
  warm-up call each, so their ratio survives a busy machine."""
  for fn in contenders.values():
    fn()
  times = {name: [] for name in contenders}
  for _ in range(repeats):
    for name, fn in contenders.items():
      start = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - start)
  return times


def load() -> str:
  """The 1/5/15-minute load averages, e.g. '1.3/1.4/1.9'."""
  return "/".join(f"{v:.1f}" for v in os.getloadavg())


def torch_reference():
  """tests/torch_reference.py: the official network's structure in PyTorch (needs torch)."""
  tests = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
  if tests not in sys.path:
    sys.path.insert(0, tests)
  import torch_reference as module  # pylint: disable=g-import-not-at-top
  return module


def torch_network(config, patch_size: int):
  """(head, body, tail) of tests/torch_reference.py sized like a tavit_jax model config,
  seeded with torch.manual_seed(0); the caller picks train or eval mode."""
  import torch  # pylint: disable=g-import-not-at-top
  ref = torch_reference()
  sizes = dict(dim=config.dim, dim_mults=tuple(config.dim_mults), heads=config.attn_heads,
               dim_head=config.attn_head_dim, groups=config.groups)
  side = patch_size // 2 ** (len(config.dim_mults) - 1)
  torch.manual_seed(0)
  head = ref.Unet_encoder(3, **sizes)
  body = ref.cnnTransformer(n_token=side * side, n_embed=config.dim * config.dim_mults[-1],
                            n_head=config.body_heads, n_hid=config.body_mlp_dim,
                            n_layer=config.body_layers, dropout=config.body_dropout)
  return head, body, ref.Unet_decoder(3, **sizes)
