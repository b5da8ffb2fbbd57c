"""The sub-pixel Upsample computes nn.ConvTranspose's function; bfloat16 compute stays close.

Both are speed options that must not change what the model computes (docs/design.md §1).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tavit_jax import models
from tavit_jax.errors import TavitError
from tavit_jax.models.layers import Upsample


@pytest.mark.parametrize("shape", [(2, 5, 7, 6), (1, 16, 16, 32)])
def test_subpixel_upsample_matches_the_transposed_conv(shape):
  x = jax.random.normal(jax.random.key(0), shape)
  native, subpixel = Upsample(subpixel=False), Upsample()
  params = native.init(jax.random.key(1), x)
  # Same tree and the same initial values, so checkpoints and seeds carry over.
  jax.tree_util.tree_map(np.testing.assert_array_equal, params, subpixel.init(jax.random.key(1), x))
  params = jax.tree_util.tree_map(  # Non-zero bias, kernel not symmetric in any way.
      lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape), params)
  np.testing.assert_allclose(subpixel.apply(params, x), native.apply(params, x), atol=1e-5)
  cotangent = jax.random.normal(jax.random.key(3), (shape[0], 2 * shape[1], 2 * shape[2], shape[3]))
  grads = [jax.grad(lambda p, x: jnp.sum(m.apply(p, x) * cotangent), argnums=(0, 1))(params, x)
           for m in (native, subpixel)]
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-4), *grads)


def _loss(config, params, x, y):
  model = models.build(config, 64)
  return float(jnp.mean(jnp.square(model.apply(params, x, jnp.zeros((x.shape[0],), jnp.int32)) - y)))


@pytest.mark.slow  # Over 30 s on 2 cores; CI runs it.
def test_bfloat16_compute_keeps_parameters_and_loss():
  config = models.tiny_config()
  config.residual = True  # As the default run: the loss is then a small, sensitive number.
  model = models.build(config, 64)
  keys = jax.random.split(jax.random.key(0), 3)
  params = {"head": model.init_head(keys[0]), "body": model.init_body(keys[1]),
            "tail": model.init_tail(keys[2])}
  # Non-trivial gates and output layer, else the ReZero/zero-init paths hide the dtype.
  params = jax.tree_util.tree_map(
      lambda p: p + 0.05 * jax.random.normal(jax.random.key(3), p.shape), params)
  x = jax.random.uniform(jax.random.key(4), (4, 64, 64, 3), minval=-1, maxval=1)
  y = jnp.clip(x + 0.1 * jax.random.normal(jax.random.key(5), x.shape), -1, 1)
  bf16 = config.copy_and_resolve_references()
  bf16.dtype = "bfloat16"
  bf16_model = models.build(bf16, 64)
  assert jax.tree_util.tree_structure(bf16_model.init_head(keys[0])) == jax.tree_util.tree_structure(params["head"])
  assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(bf16_model.init_tail(keys[2])))
  f32_loss, bf16_loss = _loss(config, params, x, y), _loss(bf16, params, x, y)
  # bfloat16 keeps 8 mantissa bits (relative error 2^-9 per rounding); a few percent of
  # the loss after ~40 layers is its expected scale.
  assert bf16_loss == pytest.approx(f32_loss, rel=0.05)


def test_unknown_dtype_is_a_clear_error():
  config = models.tiny_config()
  config.dtype = "float16"
  with pytest.raises(TavitError, match="model.dtype"):
    models.build(config, 64)
