"""The architecture of docs/design.md §1: exact parameter counts, shapes, time conditioning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tavit_jax import models
from tavit_jax.errors import TavitError


def _counts(model):
  shapes = [jax.eval_shape(f, jax.random.key(0)) for f in (model.init_head, model.init_body, model.init_tail)]
  return [models.count_params(s) for s in shapes]


def test_paper_model_parameter_counts_are_exact():
  head, body, tail = _counts(models.build(models.paper_config(), 64))
  assert (head, body, tail) == (22_341_892, 16_953_344, 5_610_629)
  assert head + body + tail == 44_905_865


@pytest.mark.parametrize("option", ["residual", "full_res_skip"])
def test_unofficial_options_keep_the_parameter_trees(option):
  config = models.paper_config()
  config[option] = True
  assert _counts(models.build(config, 64)) == [22_341_892, 16_953_344, 5_610_629]


@pytest.fixture(scope="module")
def tiny():
  model = models.build(models.tiny_config(), 64)
  params = {"head": model.init_head(jax.random.key(0)), "body": model.init_body(jax.random.key(1)),
            "tail": model.init_tail(jax.random.key(2))}
  return model, params


def test_shapes_through_the_split(tiny):
  model, params = tiny
  x = jnp.zeros((2, 64, 64, 3))
  f_h, cache = model.head_apply(params["head"], x, jnp.zeros((2,), jnp.int32))
  assert f_h.shape == (2, *model.token_shape) == (2, 16, 16, 64)
  assert [s.shape[1:] for s in cache["skips"]] == [(64, 64, 16), (32, 32, 32), (16, 16, 64)]
  assert cache["time"].shape == (2, 16)
  f_b = model.body_apply(params["body"], f_h)
  assert f_b.shape == f_h.shape
  out = model.tail_apply(params["tail"], f_b, cache)
  assert out.shape == x.shape and np.all(np.abs(out) <= 1)


def test_only_full_res_skip_lets_the_full_resolution_skip_reach_the_output(tiny):
  model, params = tiny
  x = jax.random.uniform(jax.random.key(3), (2, 64, 64, 3), minval=-1, maxval=1)
  f_h, cache = model.head_apply(params["head"], x, jnp.zeros((2,), jnp.int32))
  h0 = cache["skips"][0]
  changed = dict(cache, skips=(h0 + 1.0, *cache["skips"][1:]))
  config = models.tiny_config()
  config.full_res_skip = True
  with_skip = models.build(config, 64)
  for tail_model, uses_h0 in ((model, False), (with_skip, True)):
    outputs = [tail_model.tail_apply(params["tail"], f_h, c) for c in (cache, changed)]
    assert (not np.allclose(*outputs)) == uses_h0


def test_rezero_gates_start_at_zero(tiny):
  _, params = tiny
  gates = [v for path, v in jax.tree_util.tree_leaves_with_path(params)
           if jax.tree_util.keystr(path).endswith("['g']")]
  assert len(gates) == 4 + 2  # Head: 3 levels + middle; tail: 2 stages.
  assert all(float(g) == 0.0 for g in gates)


def test_time_conditioning_fixed_is_zero_and_random_varies(tiny):
  model, _ = tiny
  assert np.all(np.asarray(model.timesteps(jax.random.key(1), 8)) == 0)
  random_model = models.build(_random_config(), 64)
  t = np.asarray(random_model.timesteps(jax.random.key(1), 64))
  assert t.min() >= 0 and t.max() < models.NUM_TIMESTEPS and len(set(t)) > 1


def _random_config():
  config = models.tiny_config()
  config.time_conditioning = "random"
  return config


def test_dropout_only_with_a_key(tiny):
  config = models.tiny_config()
  config.body_dropout = 0.5
  model = models.build(config, 64)
  body = model.init_body(jax.random.key(0))
  f_h = jax.random.normal(jax.random.key(1), (1, *model.token_shape))
  np.testing.assert_array_equal(model.body_apply(body, f_h), model.body_apply(body, f_h))
  assert not np.allclose(model.body_apply(body, f_h, jax.random.key(2)), model.body_apply(body, f_h))


def test_unknown_time_conditioning_is_a_clear_error():
  config = models.tiny_config()
  config.time_conditioning = "sometimes"
  with pytest.raises(TavitError, match="time_conditioning"):
    models.build(config, 64)
