"""What crosses the wire, changed: p-FeSTA's token permutation (docs/design.md §4.2) and
CutMixSL's punched and mixed tokens (docs/design.md §4.3)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tavit_jax import models, protocol, roster
from tavit_jax.evaluation import communication
from tavit_jax.errors import TavitError
from tavit_jax.training import mixing, state as state_lib, steps as steps_lib
from tavit_jax.training.protocols import cutmix
from tavit_jax.training.step_parts import StepOptions

TASKS = ["denoising", "deraining", "denoising"]
PATCH, BATCH = 32, 2


def micro_config(pos_emb="client", mask_token=False):
  config = models.tiny_config()
  config.update(dim=8, attn_heads=2, attn_head_dim=4, body_layers=1, body_heads=2,
                body_mlp_dim=32, body_dropout=0.0, pos_emb=pos_emb, mask_token=mask_token)
  return config


def run_steps(permute: bool, pos_emb: str = "client", token_keep: float = 1.0, mix_groups=None,
              noise: float = 0.0):
  """A client step then a server step with SGD (updates linear in the gradients)."""
  config = micro_config(pos_emb, mask_token=token_keep < 1)
  config.update(feature_clip=0.5 if noise else 0.0, feature_noise=noise)
  model = models.build(config, PATCH)
  tx = optax.sgd(0.1)
  state = state_lib.init_state(model, TASKS, tx, tx, jax.random.PRNGKey(0))
  shardings = steps_lib.state_shardings(state, steps_lib.make_mesh(), len(TASKS), "loop")
  steps = steps_lib.make_steps(model, tx, tx, roster.task_ids(TASKS), shardings, StepOptions(
      "loop", dropout=False, permute_tokens=permute, token_keep=token_keep))
  if mix_groups is not None:  # CutMixSL's grouped steps in place of the per-client ones.
    client, server = cutmix.make_mixed_steps(model, tx, steps.parts, mix_groups, False,
                                             protocol.sender(None))
    steps = dataclasses.replace(steps, client=client, server=server)
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (len(TASKS), BATCH, PATCH, PATCH, 3)).astype(np.float32)
  data = {"input": x, "target": np.clip(x + 0.1 * rng.normal(size=x.shape), -1, 1).astype(np.float32)}
  state, client_metrics = steps.client(state, data, np.ones(len(TASKS), bool))
  state, server_metrics = steps.server(state, data)
  return jax.tree_util.tree_map(np.asarray, (state, client_metrics, server_metrics))


@pytest.mark.slow  # Four compilations of the steps: over 30 s on 2 cores.
def test_permuted_steps_equal_unpermuted_ones():
  """A Transformer without positional terms is permutation-equivariant: shuffling the tokens
  on the wire and unshuffling f_B changes nothing but float rounding."""
  permuted, plain = run_steps(True), run_steps(False)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6),
                         permuted, plain)
  # The step really shuffles: a body that adds positions itself sees a different input.
  permuted, plain = run_steps(True, "server"), run_steps(False, "server")
  assert not np.allclose(permuted[1]["loss"], plain[1]["loss"], rtol=1e-4)


@pytest.mark.slow  # Two compilations of the steps.
def test_without_positions_permuted_steps_equal_unpermuted_ones():
  """`model.pos_emb=none`: no position anywhere in f_H or the body, so the shuffle changes
  nothing but float rounding either, with the f_H noise defence on (each client's noise is
  drawn before the shuffle); the noise itself changes the step."""
  permuted, plain = run_steps(True, "none", noise=2.0), run_steps(False, "none", noise=2.0)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6),
                         permuted, plain)
  quiet = run_steps(False, "none", noise=1e-9)  # Clipped as the others, nearly no noise.
  assert not np.allclose(quiet[1]["loss"], plain[1]["loss"], rtol=1e-3)


def test_without_positions_no_tree_holds_a_position_embedding():
  model = models.build(micro_config("none"), PATCH)
  key = jax.random.PRNGKey(0)
  names = lambda tree: {k for path, _ in jax.tree_util.tree_leaves_with_path(tree)
                        for k in jax.tree_util.keystr(path).split("'")}
  for tree in (model.init_head(key), model.init_body(key), model.init_tail(key)):
    assert "position_embedding" not in names(tree)


def noised_model(clip=0.5, noise=2.0):
  config = micro_config("none")
  config.update(feature_clip=clip, feature_noise=noise)
  return models.build(config, PATCH)


def test_clipped_tokens_and_noise_only_on_what_is_sent():
  """Every f_H token's RMS is at most the clip, always; noise of σ·clip per channel is added
  only when a key is given (what is sent in training), fresh per key."""
  model = noised_model()
  head = model.init_head(jax.random.PRNGKey(0))
  x = np.random.default_rng(0).uniform(-1, 1, (4, PATCH, PATCH, 3)).astype(np.float32)
  t = np.zeros((4,), np.int32)
  clean, _ = model.head_apply(head, x, t)
  rms = np.sqrt(np.mean(np.square(clean), -1))
  assert rms.max() <= 0.5 + 1e-5
  unclipped, _ = models.build(micro_config("none"), PATCH).head_apply(head, x, t)
  assert np.sqrt(np.mean(np.square(unclipped), -1)).max() > 0.5  # The clip binds here.
  np.testing.assert_array_equal(model.apply(
      {"head": head, "body": model.init_body(jax.random.PRNGKey(1)),
       "tail": model.init_tail(jax.random.PRNGKey(2))}, x, t).shape, x.shape)
  noised = [np.asarray(model.head_apply(head, x, t, jax.random.PRNGKey(k))[0]) for k in (1, 2)]
  for sent in noised:
    assert abs(np.std(sent - clean) - 2.0 * 0.5) < 0.05
  assert not np.allclose(noised[0], noised[1])


@pytest.mark.parametrize("clip, noise", [(0.0, 1.0), (-1.0, 0.0), (1.0, float("nan"))])
def test_bad_noise_settings_are_one_line_refusals(clip, noise):
  with pytest.raises(TavitError, match="model.feature_clip and model.feature_noise") as error:
    noised_model(clip, noise)
  assert "\n" not in str(error.value)


def test_position_embedding_moves_to_the_head():
  client, server = (models.build(micro_config(pos_emb), PATCH) for pos_emb in ("client", "server"))
  key = jax.random.PRNGKey(0)
  tokens = client.token_shape[0] * client.token_shape[1]
  assert client.init_head(key)["position_embedding"].shape == client.token_shape
  assert "position_embedding" not in client.init_body(key)
  assert server.init_body(key)["position_embedding"].shape == (tokens, client.token_shape[2])
  assert "position_embedding" not in server.init_head(key)


def test_the_server_sees_fresh_permutations_per_sample_and_step():
  f_h = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
  seen = []
  for step in range(2):
    _, keys = protocol.step_keys(jax.random.fold_in(jax.random.PRNGKey(0), step), 1)
    order = protocol.token_permutations(protocol.permutation_key(keys[0, 0]), 2, 16)
    sent = np.asarray(protocol.permute_tokens(f_h, order))
    np.testing.assert_array_equal(protocol.unpermute_tokens(sent, order), f_h)
    firsts = sent[..., 0].reshape(2, 16) - f_h[..., 0].reshape(2, 16)[:, :1]  # Token indices × 3.
    seen += [tuple(firsts[0]), tuple(firsts[1])]
    assert sorted(firsts[0]) == list(range(0, 48, 3))  # Every token once, only their order changes.
  identity = tuple(range(0, 48, 3))
  assert identity not in seen and len(set(seen)) == 4, seen


@pytest.mark.parametrize("permute, pos_emb, message", [
    ("per_sample", "server", "needs model.pos_emb=none or client"),
    ("always", "client", "train.permute_tokens must be one of"),
])
def test_refusals_are_one_line(permute, pos_emb, message):
  with pytest.raises(TavitError, match=message) as error:
    protocol.check_permutation(permute, pos_emb)
  assert "\n" not in str(error.value)


def test_unknown_pos_emb_is_refused():
  with pytest.raises(TavitError, match="model.pos_emb must be one of"):
    models.build(micro_config("nowhere"), PATCH)


@pytest.mark.slow
def test_punched_step_trains_the_mask_token():
  before = models.build(micro_config(mask_token=True), PATCH).init_body(jax.random.PRNGKey(0))
  state, client_metrics, server_metrics = run_steps(False, token_keep=0.25)
  assert np.all(np.isfinite(client_metrics["loss"])) and np.all(np.isfinite(server_metrics["loss"]))
  assert not np.allclose(state["server"]["body"]["mask_token"], before["mask_token"])


def test_mask_token_replaces_exactly_the_tokens_not_sent():
  model = models.build(micro_config(mask_token=True), PATCH)
  body = model.init_body(jax.random.PRNGKey(0))
  f_h = jax.random.normal(jax.random.PRNGKey(1), (2, *model.token_shape))
  tokens = model.token_shape[0] * model.token_shape[1]
  everything = np.ones((2, tokens), bool)
  np.testing.assert_array_equal(model.body_apply(body, f_h, keep=everything), model.body_apply(body, f_h))
  _, keys = protocol.step_keys(jax.random.PRNGKey(0), 1)
  keep = np.asarray(protocol.keep_masks(keys[0, 0], 2, tokens, 0.25))
  assert keep.sum(axis=1).tolist() == [tokens // 4] * 2 and not np.array_equal(keep[0], keep[1])
  grad = jax.grad(lambda f: model.body_apply(body, f, keep=keep).sum())(f_h)
  per_token = np.abs(np.asarray(grad)).reshape(2, tokens, -1).sum(-1)
  assert np.all(per_token[~keep] == 0) and np.all(per_token[keep] > 0)


@pytest.mark.parametrize("token_keep", [0.5, 0.25])
def test_counted_bytes_are_rho_times_the_full_message(token_keep):
  model = models.build(micro_config(mask_token=True), PATCH)
  full = communication.bytes_per_step(model, PATCH, BATCH)
  punched = communication.bytes_per_step(model, PATCH, BATCH, token_keep=token_keep)
  for message in ("features_up", "gradients_down"):
    assert punched[message] == token_keep * full[message]
  for message in ("features_down", "gradients_up", "fedavg_upload"):
    assert punched[message] == full[message]
  assert punched["client_phase_up"] == punched["features_up"] + full["gradients_up"]


@pytest.mark.parametrize("token_keep, mask_token, message", [
    (0.0, True, "must be in \\(0, 1\\]"), (1.5, True, "must be in"),
    (0.5, False, "needs model.mask_token=True"),
])
def test_punching_refusals_are_one_line(token_keep, mask_token, message):
  with pytest.raises(TavitError, match=message) as error:
    protocol.check_token_keep(token_keep, mask_token)
  assert "\n" not in str(error.value)


def test_only_the_kept_tokens_are_sent_and_they_go_back_in_place():
  f_h = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype(np.float32)
  _, keys = protocol.step_keys(jax.random.PRNGKey(0), 1)
  keep = protocol.keep_masks(keys[0, 0], 2, 16, 0.5)
  sent = np.asarray(protocol.kept_only(f_h, keep))
  assert sent.shape == (2, 8, 3)
  for b in range(2):
    np.testing.assert_array_equal(sent[b], f_h[b].reshape(16, 3)[np.asarray(keep[b])])
  back = np.asarray(protocol.fill_kept(sent, keep, (4, 4))).reshape(2, 16, 3)
  np.testing.assert_array_equal(back[np.asarray(keep)], f_h.reshape(2, 16, 3)[np.asarray(keep)])
  assert np.all(back[~np.asarray(keep)] == 0)


@pytest.mark.slow  # Two compilations of the steps: over 30 s on 2 cores.
def test_mixed_steps_train_every_client_and_the_body():
  groups = mixing.groups(TASKS, 3, "any")  # One group mixing all three clients.
  state, client_metrics, server_metrics = run_steps(False, mix_groups=groups)
  initial = run_steps(False)  # Same init; only the steps differ.
  for metrics in (client_metrics, server_metrics):
    assert metrics["loss"].shape == (3,) and np.all(np.isfinite(metrics["loss"]))
  fresh = state_lib.init_state(models.build(micro_config(), PATCH), TASKS, optax.sgd(0.1),
                               optax.sgd(0.1), jax.random.PRNGKey(0))
  for k in range(3):
    moved = jax.tree_util.tree_map(lambda a, b: not np.allclose(a[k], b[k]),
                                   state["clients"]["head"], fresh["clients"]["head"])
    assert any(jax.tree_util.tree_leaves(moved))
  assert not np.allclose(client_metrics["loss"], initial[1]["loss"])  # Mixed ≠ plain.


def test_mix_masks_partition_every_grid_by_dirichlet_shares():
  owned = np.asarray(mixing.masks(jax.random.PRNGKey(3), 400, 64, 2))
  np.testing.assert_array_equal(owned.sum(axis=0), 1)  # Disjoint, and every token owned.
  shares = owned.mean(axis=2)  # λ_k per sample: uniform on [0, 1] for K = 2.
  assert abs(shares[0].mean() - 0.5) < 0.05 and shares[0].std() > 0.25


def test_a_clients_wire_gradient_is_zero_outside_its_tokens():
  """What the server sends client k back (∂L/∂ of what k sent) lives on M_k only."""
  model = models.build(micro_config(), PATCH)
  body = model.init_body(jax.random.PRNGKey(1))
  h, w, c = model.token_shape
  sent = [jax.random.normal(jax.random.PRNGKey(k), (BATCH, h, w, c)) for k in range(2)]
  owned = mixing.masks(jax.random.PRNGKey(2), BATCH, h * w, 2).reshape(2, BATCH, h, w, 1)
  loss = lambda sent: jnp.square(model.body_apply(body, mixing.paste(sent, owned))).sum()
  grads = jax.grad(loss)(sent)
  for k in range(2):
    outside = np.broadcast_to(~np.asarray(owned[k]), grads[k].shape)
    assert np.all(np.asarray(grads[k])[outside] == 0)
    assert np.any(np.asarray(grads[k])[~outside] != 0)


def test_mixed_bytes_are_one_kth_of_each_message():
  model = models.build(micro_config(), PATCH)
  full = communication.bytes_per_step(model, PATCH, BATCH)
  mixed = communication.bytes_per_step(model, PATCH, BATCH, mix_clients=2)
  for key in ("features_up", "features_down", "gradients_up", "gradients_down"):
    assert mixed[key] * 2 == full[key]


@pytest.mark.parametrize("settings, message", [
    (("cutmix", 4, "any", 1.0), "train.mix_clients=4 is larger than the 3 clients"),
    (("cutmix", 2, "same_task", 1.0), "train.mix_pairing=same_task needs"),
    (("cutmix", 2, "any", 0.5), "train.token_mix=cutmix already sends"),
    (("mixup", 2, "any", 1.0), "train.token_mix must be one of"),
])
def test_mixing_refusals_are_one_line(settings, message):
  with pytest.raises(TavitError, match=message):
    mixing.check(*settings)
    mixing.groups(TASKS, settings[1], settings[2])
