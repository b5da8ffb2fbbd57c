"""Official PyTorch checkpoints → our trees: the imported model computes what PyTorch does.

Reference modules with the official structure and key names are in tests/torch_reference.py;
a tiny size keeps the comparison fast, and the paper size is checked by shapes only.
"""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

# pylint: disable=g-import-not-at-top,wrong-import-position
from tavit_jax import models
from tavit_jax.errors import TavitError
from tavit_jax.serving import param_files, sources, torch_import

import torch_reference as official
# pylint: enable=g-import-not-at-top,wrong-import-position

PATCH = 64
TOLERANCE = 1e-4  # float32, max abs difference.


def _torch_modules(config, patch=PATCH):
  sizes = dict(dim=config.dim, dim_mults=tuple(config.dim_mults), heads=config.attn_heads,
               dim_head=config.attn_head_dim, groups=config.groups)
  width = config.dim * config.dim_mults[-1]
  tokens = (patch // 2 ** (len(config.dim_mults) - 1)) ** 2
  body = official.cnnTransformer(n_token=tokens, n_embed=width, n_head=config.body_heads,
                                 n_hid=config.body_mlp_dim, n_layer=config.body_layers,
                                 dropout=config.body_dropout)
  return official.Unet_encoder(3, **sizes), body, official.Unet_decoder(3, **sizes)


def _perturb(module, generator):
  """Random values everywhere, norms, biases and ReZero gates included (defaults hide bugs);
  weights keep their scale so that activations stay O(1) at any size."""
  with torch.no_grad():
    for name, param in module.named_parameters():
      noise = torch.randn(param.shape, generator=generator)
      if name.endswith(".g"):
        param.copy_(0.5 + 0.5 * torch.rand(param.shape, generator=generator))
      elif param.ndim == 1:
        param.add_(0.1 * noise)
      else:
        param.add_(0.5 * float(param.std()) * noise)
  return module.eval()


def _nhwc(t):
  return jnp.asarray(t.detach().numpy().transpose(0, 2, 3, 1))


def _nchw(a):
  return torch.from_numpy(np.asarray(a).transpose(0, 3, 1, 2).copy())


def _max_diff(ours, theirs):
  return float(np.max(np.abs(np.asarray(ours) - np.asarray(theirs))))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  """Tiny official-structure modules saved to .pt files, and our model imported from them."""
  config = models.tiny_config()
  generator = torch.Generator().manual_seed(0)
  with torch.random.fork_rng():  # Default initialisation draws from the global generator.
    torch.manual_seed(0)
    head, body, tail = (_perturb(m, generator) for m in _torch_modules(config))
  folder = tmp_path_factory.mktemp("official")
  paths = {}
  for part, module in (("head", head), ("body", body), ("tail", tail)):
    paths[part] = str(folder / f"TAViT_test_{part}.pt")
    torch.save(module.state_dict(), paths[part])
  params = torch_import.load_official(paths["head"], paths["body"], paths["tail"], config)
  x = torch.rand((2, 3, PATCH, PATCH), generator=generator) * 2 - 1
  t = torch.tensor([3, 517])
  return dict(config=config, model=models.build(config, PATCH), params=params, paths=paths,
              torch=(head, body, tail), x=x, t=t)


def test_head_matches_pytorch(setup):
  head = setup["torch"][0]
  with torch.no_grad():
    f_h, time, skips = head(setup["x"], setup["t"])
  ours, cache = setup["model"].head_apply(setup["params"]["head"], _nhwc(setup["x"]),
                                          jnp.asarray(setup["t"].numpy()))
  diffs = [_max_diff(ours, _nhwc(f_h)), _max_diff(cache["time"], time.numpy())]
  diffs += [_max_diff(ours_skip, _nhwc(skip)) for ours_skip, skip in zip(cache["skips"], skips)]
  print(f"head max abs differences (f_H, time, skips): {diffs}")
  assert max(diffs) < TOLERANCE


def test_body_matches_pytorch(setup):
  body = setup["torch"][1]
  f_h = torch.randn((2, body.pos_embedding.shape[-1], PATCH // 4, PATCH // 4),
                    generator=torch.Generator().manual_seed(1))
  with torch.no_grad():
    expected = body(f_h)
  ours = setup["model"].body_apply(setup["params"]["body"], _nhwc(f_h))
  diff = _max_diff(ours, _nhwc(expected))
  print(f"body max abs difference: {diff:.2e}")
  assert diff < TOLERANCE


def test_tail_matches_pytorch(setup):
  head, _, tail = setup["torch"]
  with torch.no_grad():
    f_h, time, skips = head(setup["x"], setup["t"])
    expected = tail(f_h, time, skips)
  assert float(expected.abs().mean()) < 0.9  # tanh not saturated: differences would show.
  cache = {"skips": tuple(_nhwc(s) for s in skips), "time": jnp.asarray(time.numpy())}
  ours = setup["model"].tail_apply(setup["params"]["tail"], _nhwc(f_h), cache)
  diff = _max_diff(ours, _nhwc(expected))
  print(f"tail max abs difference: {diff:.2e}")
  assert diff < TOLERANCE


def test_whole_model_matches_pytorch(setup):
  head, body, tail = setup["torch"]
  with torch.no_grad():
    f_h, time, skips = head(setup["x"], setup["t"])
    expected = tail(body(f_h), time, skips)
  ours = setup["model"].apply(setup["params"], _nhwc(setup["x"]), jnp.asarray(setup["t"].numpy()))
  diff = _max_diff(ours, _nhwc(expected))
  print(f"whole model max abs difference: {diff:.2e}")
  assert diff < TOLERANCE


def test_paper_size_modules_have_the_paper_keys_and_counts():
  with torch.device("meta"):  # Shapes only: nothing is allocated.
    modules = official.paper_modules()
  assert [official.count(m) for m in modules] == [22_341_892, 16_953_344, 5_610_629]
  for part, module in zip(("head", "body", "tail"), modules):
    shapes = {key: tuple(value.shape) for key, value in module.state_dict().items()}
    assert shapes == torch_import.official_shapes(part, models.paper_config())


def _error(call) -> str:
  with pytest.raises(TavitError) as info:
    call()
  message = str(info.value)
  assert "\n" not in message
  return message


def test_bad_key_and_bad_shape_name_the_key(setup, tmp_path):
  state = torch.load(setup["paths"]["tail"], weights_only=True)
  renamed = dict(state)
  renamed["ups.0.0.mlp.1.wieght"] = renamed.pop("ups.0.0.mlp.1.weight")
  torch.save(renamed, tmp_path / "renamed.pt")
  message = _error(lambda: torch_import.convert_tail(
      torch_import.load_state_dict(str(tmp_path / "renamed.pt")), setup["config"]))
  assert "ups.0.0.mlp.1.wieght" in message

  reshaped = dict(state, **{"final_conv.1.weight": torch.zeros(3, 8, 1, 1)})
  message = _error(lambda: torch_import.convert_tail(reshaped, setup["config"]))
  assert "final_conv.1.weight" in message
  assert "(3, 8, 1, 1)" in message and "(3, 16, 1, 1)" in message


def test_wrong_part_and_wrong_size_are_one_line_errors(setup):
  head_state = torch_import.load_state_dict(setup["paths"]["head"])
  assert "looks like a head" in _error(
      lambda: torch_import.convert_body(head_state, setup["config"]))
  assert "mlp.0.weight" in _error(
      lambda: torch_import.convert_head(head_state, models.paper_config()))


def test_data_parallel_prefix_is_stripped(setup):
  state = torch_import.load_state_dict(setup["paths"]["body"])
  prefixed = {f"module.{key}": value for key, value in state.items()}
  converted = torch_import.convert_body(prefixed, setup["config"])
  np.testing.assert_array_equal(converted["position_embedding"],
                                setup["params"]["body"]["position_embedding"])


def test_unreadable_files_and_missing_torch(tmp_path, monkeypatch):
  torch.save([1, 2], tmp_path / "list.pt")
  (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
  assert "not a PyTorch state dict" in _error(
      lambda: torch_import.load_state_dict(str(tmp_path / "list.pt")))
  assert "junk.pt" in _error(lambda: torch_import.load_state_dict(str(tmp_path / "junk.pt")))
  assert "no such" in _error(lambda: torch_import.load_state_dict(str(tmp_path / "none.pt")))
  monkeypatch.setitem(sys.modules, "torch", None)
  assert "pip install 'tavit_jax[torch]'" in _error(
      lambda: torch_import.load_state_dict(str(tmp_path / "list.pt")))


def test_cli_writes_a_folder_that_the_library_loads(setup, tmp_path):
  out = tmp_path / "imported"
  paths = setup["paths"]
  result = subprocess.run(
      [sys.executable, "-m", "tavit_jax.cli.import_torch", f"--head={paths['head']}",
       f"--body={paths['body']}", f"--tail={paths['tail']}", "--task=deblocking",
       f"--out={out}", "--model=tiny"], capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr
  assert "wrote" in result.stdout
  params, config, meta = param_files.load(str(out))
  assert meta["task"] == "deblocking" and config.dim == setup["config"].dim
  for ours, saved in zip(*(jax.tree_util.tree_leaves(p) for p in (setup["params"], params))):
    np.testing.assert_array_equal(ours, saved)
  trained = sources.open_trained(str(out))  # What tavit-export and tavit-restore read.
  restored = trained.restore_fn()(trained.params, _nhwc(setup["x"]))
  head, body, tail = setup["torch"]
  with torch.no_grad():
    f_h, time, skips = head(setup["x"], torch.zeros(2, dtype=torch.long))
    expected = tail(body(f_h), time, skips)
  assert _max_diff(restored, _nhwc(expected)) < TOLERANCE


def test_cli_rejects_unknown_tasks_and_foreign_folders(setup, tmp_path):
  paths = setup["paths"]
  run = lambda task, out: torch_import.import_official(
      paths["head"], paths["body"], paths["tail"], task=task, out=str(out), model="tiny")
  assert "deblock" in _error(lambda: run("deblock", tmp_path / "a"))
  (tmp_path / "b").mkdir()
  (tmp_path / "b" / "notes.txt").write_text("mine")
  assert "not empty" in _error(lambda: run("denoising", tmp_path / "b"))
