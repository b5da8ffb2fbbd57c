"""Official TAViT PyTorch checkpoints → this project's head, body and tail parameter trees.

The official release (github.com/TAViT2022/TAViT) ships state dicts of `Unet_encoder`
(`TAViT_<task>_head*.pt`), `Unet_decoder` (`TAViT_<task>_tail*.pt`) and `cnnTransformer`
(`TAViT_body_cycle<N>.pth`). Each key maps to one leaf of our trees (the packed q|k|v
projection of `nn.MultiheadAttention` to three); every key must be used and every leaf
filled, so a checkpoint of another part or size fails on its first wrong key.

Layouts: Conv2d OIHW → HWIO; ConvTranspose2d IOHW → HWOI (our `transpose_kernel=True`
convolution is the same gradient-of-conv as PyTorch's); Linear (out, in) → (in, out);
attention projections → (in, heads, head_dim) and (heads, head_dim, out).
"""

import dataclasses
import os
from typing import Any, Callable, Mapping

import jax
import ml_collections
import numpy as np

from tavit_jax import files, models
from tavit_jax.data.tasks import TASKS
from tavit_jax.errors import TavitError
from tavit_jax.serving import param_files

PATCH_SIZE = 64  # The official body has 256 tokens: the 16×16 features of a 64×64 patch.
_PART_PREFIXES = {"head": ("mlp.", "downs.", "mid_"), "tail": ("ups.", "final_conv."),
                  "body": ("pos_embedding", "transformer.")}


@dataclasses.dataclass(frozen=True)
class _Rule:
  key: str  # PyTorch state-dict key.
  shape: tuple[int, ...]  # Its shape in the checkpoint.
  path: tuple[str, ...]  # Our parameter-tree path.
  convert: Callable[[np.ndarray], np.ndarray]


class _Rules:
  """Builds the key ↔ leaf table of one part from the shapes our model expects."""

  def __init__(self, like):
    self.like = like
    self.rules: list[_Rule] = []

  def leaf(self, path):
    node = self.like
    for name in path:
      node = node[name]
    return node

  def has(self, path) -> bool:
    try:
      self.leaf(path)
      return True
    except KeyError:
      return False

  def add(self, key, shape, path, convert=lambda a: a):
    self.rules.append(_Rule(key, tuple(shape), tuple(path), convert))

  def conv(self, key, path):
    """Conv2d OIHW → HWIO; also ConvTranspose2d IOHW → HWOI (the same permutation)."""
    h, w, i, o = self.leaf((*path, "kernel")).shape
    self.add(f"{key}.weight", (o, i, h, w), (*path, "kernel"), lambda a: a.transpose(2, 3, 1, 0))
    if self.has((*path, "bias")):
      self.add(f"{key}.bias", (o,), (*path, "bias"))

  def dense(self, key, path):
    i, o = self.leaf((*path, "kernel")).shape
    self.add(f"{key}.weight", (o, i), (*path, "kernel"), lambda a: a.T)
    self.add(f"{key}.bias", (o,), (*path, "bias"))

  def norm(self, key, path):
    (width,) = self.leaf((*path, "scale")).shape
    self.add(f"{key}.weight", (width,), (*path, "scale"))
    self.add(f"{key}.bias", (width,), (*path, "bias"))

  def block(self, key, path):
    self.conv(f"{key}.block.0", (*path, "Conv_0"))
    self.norm(f"{key}.block.1", (*path, "GroupNorm_0"))

  def resnet(self, key, path):
    self.dense(f"{key}.mlp.1", (*path, "Dense_0"))
    self.block(f"{key}.block1", (*path, "Block_0"))
    self.block(f"{key}.block2", (*path, "Block_1"))
    if self.has((*path, "Conv_0")):
      self.conv(f"{key}.res_conv", (*path, "Conv_0"))

  def rezero_attention(self, key, path):
    """Official Residual(Rezero(LinearAttention)): g is shape (1,), ours a scalar."""
    self.add(f"{key}.fn.g", (1,), (*path, "g"), lambda a: a.reshape(()))
    self.conv(f"{key}.fn.fn.to_qkv", (*path, "LinearAttention_0", "Conv_0"))
    self.conv(f"{key}.fn.fn.to_out", (*path, "LinearAttention_0", "Conv_1"))

  def encoder_layer(self, key, path):
    """torch.nn.TransformerEncoderLayer → our EncoderLayer."""
    attn = (*path, "MultiHeadDotProductAttention_0")
    width, heads, head_dim = self.leaf((*attn, "query", "kernel")).shape
    for index, name in enumerate(("query", "key", "value")):
      rows = slice(index * width, (index + 1) * width)
      self.add(f"{key}.self_attn.in_proj_weight", (3 * width, width), (*attn, name, "kernel"),
               lambda a, rows=rows: a[rows].T.reshape(width, heads, head_dim))
      self.add(f"{key}.self_attn.in_proj_bias", (3 * width,), (*attn, name, "bias"),
               lambda a, rows=rows: a[rows].reshape(heads, head_dim))
    self.add(f"{key}.self_attn.out_proj.weight", (width, width), (*attn, "out", "kernel"),
             lambda a: a.T.reshape(heads, head_dim, width))
    self.add(f"{key}.self_attn.out_proj.bias", (width,), (*attn, "out", "bias"))
    self.dense(f"{key}.linear1", (*path, "Dense_0"))
    self.dense(f"{key}.linear2", (*path, "Dense_1"))
    self.norm(f"{key}.norm1", (*path, "LayerNorm_0"))
    self.norm(f"{key}.norm2", (*path, "LayerNorm_1"))


def _head_rules(rules: _Rules, levels: int) -> None:
  rules.dense("mlp.0", ("TimeMLP_0", "Dense_0"))
  rules.dense("mlp.2", ("TimeMLP_0", "Dense_1"))
  for level in range(levels):
    rules.resnet(f"downs.{level}.0", (f"ResnetBlock_{2 * level}",))
    rules.resnet(f"downs.{level}.1", (f"ResnetBlock_{2 * level + 1}",))
    rules.rezero_attention(f"downs.{level}.2", (f"ReZeroAttention_{level}",))
    if level < levels - 1:
      rules.conv(f"downs.{level}.3.conv", (f"Downsample_{level}", "Conv_0"))
  rules.resnet("mid_block1", (f"ResnetBlock_{2 * levels}",))
  rules.rezero_attention("mid_attn", (f"ReZeroAttention_{levels}",))
  rules.resnet("mid_block2", (f"ResnetBlock_{2 * levels + 1}",))


def _tail_rules(rules: _Rules, levels: int) -> None:
  for stage in range(levels - 1):
    rules.resnet(f"ups.{stage}.0", (f"ResnetBlock_{2 * stage}",))
    rules.resnet(f"ups.{stage}.1", (f"ResnetBlock_{2 * stage + 1}",))
    rules.rezero_attention(f"ups.{stage}.2", (f"ReZeroAttention_{stage}",))
    rules.conv(f"ups.{stage}.3.conv", (f"Upsample_{stage}", "ConvTranspose_0"))
  rules.block("final_conv.0", ("Block_0",))
  rules.conv("final_conv.1", ("Conv_0",))


def _body_rules(rules: _Rules, layers: int) -> None:
  tokens, width = rules.leaf(("position_embedding",)).shape
  rules.add("pos_embedding", (tokens, 1, width), ("position_embedding",),
            lambda a: a.reshape(tokens, width))
  for layer in range(layers):
    rules.encoder_layer(f"transformer.layers.{layer}", (f"EncoderLayer_{layer}",))


def _listing(keys) -> str:
  keys = sorted(keys)
  return ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def _other_part(part: str, keys) -> str:
  """' (it looks like a tail checkpoint)' when the keys belong to another part."""
  for other, prefixes in _PART_PREFIXES.items():
    if other != part and keys and all(k.startswith(prefixes) for k in keys):
      return f" (it looks like a {other} checkpoint)"
  return ""


def _strip_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
  """Drops the 'module.' prefix that nn.DataParallel adds to every key."""
  if state_dict and all(k.startswith("module.") for k in state_dict):
    return {k[len("module."):]: v for k, v in state_dict.items()}
  return dict(state_dict)


def _rules(part: str, config: ml_collections.ConfigDict, patch_size: int) -> _Rules:
  model = models.build(config, patch_size)
  init = {"head": model.init_head, "body": model.init_body, "tail": model.init_tail}[part]
  rules = _Rules(jax.eval_shape(init, jax.random.key(0)))
  levels = len(config.dim_mults)
  {"head": lambda: _head_rules(rules, levels), "tail": lambda: _tail_rules(rules, levels),
   "body": lambda: _body_rules(rules, config.body_layers)}[part]()
  return rules


def official_shapes(part: str, config: ml_collections.ConfigDict,
                    patch_size: int = PATCH_SIZE) -> dict[str, tuple[int, ...]]:
  """The state-dict keys and shapes of the official `part` module for `config`."""
  return {rule.key: rule.shape for rule in _rules(part, config, patch_size).rules}


def _numpy(value) -> np.ndarray:
  """float32 numpy from numpy or torch values (parameters that require grad included)."""
  if hasattr(value, "detach"):
    value = value.detach().cpu().float().numpy()
  return np.asarray(value, dtype=np.float32)


def _convert(part: str, state_dict, config, patch_size: int, source: str) -> dict:
  rules = _rules(part, config, patch_size)
  state_dict = _strip_prefix(state_dict)
  wanted = {rule.key: rule.shape for rule in rules.rules}
  hint = (_other_part(part, list(state_dict))
          or "; do the model sizes (--model) match the checkpoint's?")
  unexpected = set(state_dict) - set(wanted)
  if unexpected:
    raise TavitError(f"{source}: {len(unexpected)} unexpected key(s) for a {part}: "
                     f"{_listing(unexpected)}{hint}")
  missing = set(wanted) - set(state_dict)
  if missing:
    raise TavitError(f"{source}: {len(missing)} missing {part} key(s): {_listing(missing)}{hint}")
  tree: dict = {}
  for rule in rules.rules:
    array = _numpy(state_dict[rule.key])
    if array.shape != rule.shape:
      raise TavitError(f"{source}: {rule.key} has shape {array.shape}, the model expects "
                       f"{rule.shape}{hint}")
    node = tree
    for name in rule.path[:-1]:
      node = node.setdefault(name, {})
    # Not np.ascontiguousarray: it turns the 0-d ReZero gates into 1-d arrays.
    node[rule.path[-1]] = np.array(rule.convert(array), order="C")
  expected = jax.tree_util.tree_map(lambda s: s.shape, rules.like)
  assert jax.tree_util.tree_map(np.shape, tree) == expected, "conversion table out of date"
  return tree


def convert_head(state_dict: Mapping[str, Any], config: ml_collections.ConfigDict, *,
                 patch_size: int = PATCH_SIZE, source: str = "head state dict") -> dict:
  """An official `Unet_encoder` state dict (numpy or torch values) → our head tree."""
  return _convert("head", state_dict, config, patch_size, source)


def convert_tail(state_dict: Mapping[str, Any], config: ml_collections.ConfigDict, *,
                 patch_size: int = PATCH_SIZE, source: str = "tail state dict") -> dict:
  """An official `Unet_decoder` (skip 'add') state dict → our tail tree."""
  if config.residual:
    raise TavitError("official checkpoints need model.residual=False (the official tail "
                     "predicts the image, not a correction)")
  return _convert("tail", state_dict, config, patch_size, source)


def convert_body(state_dict: Mapping[str, Any], config: ml_collections.ConfigDict, *,
                 patch_size: int = PATCH_SIZE, source: str = "body state dict") -> dict:
  """An official `cnnTransformer` state dict → our body tree."""
  return _convert("body", state_dict, config, patch_size, source)


def _torch():
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise TavitError("reading PyTorch checkpoints needs torch: "
                     "pip install 'tavit_jax[torch]'") from None
  return torch


def load_state_dict(path: str) -> dict[str, np.ndarray]:
  """A PyTorch state-dict file as float32 numpy arrays (safe loading: no code runs)."""
  torch = _torch()
  if not os.path.isfile(path):
    raise TavitError(f"no such checkpoint file: {path}")
  try:
    loaded = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # pylint: disable=broad-except  # Any unreadable file is the user's.
    reason = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
    raise TavitError(f"{path} is not a readable PyTorch state dict: {reason.strip()}") from None
  if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
    loaded = loaded["state_dict"]
  if not isinstance(loaded, Mapping) or not all(torch.is_tensor(v) for v in loaded.values()):
    raise TavitError(f"{path} is not a PyTorch state dict (a mapping from names to tensors)")
  return {key: value.detach().to(torch.float32).numpy() for key, value in loaded.items()}


def load_official(head: str, body: str, tail: str, config: ml_collections.ConfigDict, *,
                  patch_size: int = PATCH_SIZE) -> dict:
  """The three official files → `{'head', 'body', 'tail'}` for `Model.apply`."""
  return {
      "head": convert_head(load_state_dict(head), config, patch_size=patch_size, source=head),
      "body": convert_body(load_state_dict(body), config, patch_size=patch_size, source=body),
      "tail": convert_tail(load_state_dict(tail), config, patch_size=patch_size, source=tail),
  }


def import_official(head: str, body: str, tail: str, *, task: str, out: str,
                    model: str = "paper") -> dict:
  """Converts the three files into a parameters folder at `out`; returns the parameters."""
  if task not in TASKS:
    raise TavitError(f"--task must be one of {', '.join(TASKS)}, not {task!r}")
  head, body, tail, out = map(files.resolve, (head, body, tail, out))
  config = {"paper": models.paper_config, "tiny": models.tiny_config}[model]()
  params = load_official(head, body, tail, config)
  param_files.save(out, params, config, task=task, patch_size=PATCH_SIZE,
                   source={"head": head, "body": body, "tail": tail, "from": "official PyTorch"})
  return params
