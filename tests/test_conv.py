"""The 3×3 convolution forms (models/conv.py) compute XLA's convolution and its gradients."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tavit_jax.models import conv, layers


def _data(cin=5, cout=7, side=6, batch=2):
  rng = np.random.default_rng(0)
  return (jnp.asarray(rng.normal(size=(batch, side, side, cin)), jnp.float32),
          jnp.asarray(rng.normal(size=(3, 3, cin, cout)), jnp.float32),
          jnp.asarray(rng.normal(size=(batch, side, side, cout)), jnp.float32))


@pytest.mark.parametrize("form", conv.FORMS)
def test_each_form_equals_xla_convolution_and_its_gradients(form):
  x, w, g = _data()
  out, vjp = jax.vjp(lambda x, w: conv.forward(x, w, "xla"), x, w)
  dx, dw = vjp(g)
  np.testing.assert_allclose(conv.forward(x, w, form), out, atol=1e-5)
  np.testing.assert_allclose(conv.input_grad(g, w, form), dx, atol=1e-5)
  np.testing.assert_allclose(conv.kernel_grad(x, g, form), dw, atol=5e-5)


def test_mixed_forms_differentiate_like_xla_also_under_vmap():
  x, w, g = _data()
  loss = lambda forms: lambda x, w: jnp.sum(conv.conv3x3(x, w, forms) * g)
  want = jax.grad(loss(("xla",) * 3), argnums=(0, 1))(x, w)
  got = jax.grad(loss(("shift9", "im2col", "shift9")), argnums=(0, 1))(x, w)
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, atol=5e-5)
  per_client = jax.vmap(jax.grad(loss(("im2col", "shift9", "im2col")), argnums=(0, 1)))
  for a, b in zip(per_client(jnp.stack([x, x]), jnp.stack([w, w])), want):
    np.testing.assert_allclose(a[1], b, atol=5e-5)


def test_paper_layers_on_cpu_use_the_measured_forms_and_the_rest_stay_xla():
  assert conv.choose_forms(512, 512, "cpu") == ("xla", "xla", "shift9")
  assert conv.choose_forms(3, 128, "cpu") == ("xla", "xla", "shift9")
  assert conv.choose_forms(16, 16, "cpu") == ("xla",) * 3
  assert conv.choose_forms(512, 512, "gpu") == ("xla",) * 3
  with pytest.raises(ValueError, match="unknown convolution form 'winograd'"):
    conv.forward(*_data()[:2], "winograd")


def test_conv3x3_layer_is_flax_conv_with_the_same_parameters():
  x = _data(cin=128, cout=128, side=4, batch=1)[0]  # A shape that takes the nine taps.
  ours, flax_conv = layers.Conv3x3(128), nn.Conv(128, (3, 3), padding=1)
  params = ours.init(jax.random.key(0), x)
  assert jax.tree_util.tree_map(jnp.shape, params) == jax.tree_util.tree_map(
      jnp.shape, flax_conv.init(jax.random.key(0), x))
  np.testing.assert_allclose(ours.apply(params, x), flax_conv.apply(params, x), atol=1e-4)
  grads = [jax.grad(lambda p, m=m: jnp.sum(m.apply(p, x) ** 2))(params) for m in (ours, flax_conv)]
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3),
                         *grads)
