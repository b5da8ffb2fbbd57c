"""SCA-MTL's CTAM and CSAM (docs/design.md §4.5): shapes, identity at initialisation, where the
queries and the keys/values come from. The centralised baseline runs end to end in
test_compare.py's systems table."""

import jax
import jax.numpy as jnp
import numpy as np

from tavit_jax.models.sca_mtl import CrossScaleAttention, CrossTaskAttention, SCAMTLNeck

KEY = jax.random.PRNGKey(0)


def opened(params):
  """The gates set to 1, so the attention path counts."""
  return jax.tree_util.tree_map_with_path(
      lambda path, v: jnp.ones_like(v) if "gate" in jax.tree_util.keystr(path) else v, params)


def test_neck_keeps_the_shape_and_starts_as_the_identity():
  f_b = jax.random.normal(KEY, (4, 8, 8, 16))
  tasks = jnp.array([0, 1, 2, 3])
  neck = SCAMTLNeck(num_tasks=4, heads=2)
  params = neck.init(KEY, f_b, tasks)
  np.testing.assert_array_equal(neck.apply(params, f_b, tasks), f_b)  # Gates at 0.
  out = neck.apply(opened(params), f_b, tasks)
  assert out.shape == f_b.shape and not np.allclose(out, f_b)


def test_ctam_queries_its_own_task_and_reads_only_the_other_tasks_memories():
  tokens = jax.random.normal(KEY, (2, 5, 8))
  tasks = jnp.array([0, 1])
  ctam = CrossTaskAttention(num_tasks=3, memory_tokens=2, heads=2)
  params = opened(ctam.init(KEY, tokens, tasks))
  base = ctam.apply(params, tokens, tasks)

  def with_memory(task, delta):
    p = jax.tree_util.tree_map(lambda x: x, params)
    p["params"]["memory"] = p["params"]["memory"].at[task].add(delta)
    return ctam.apply(p, tokens, tasks)
  own = with_memory(0, 5.0)  # Sample 0 is task 0: its own memory is not a key.
  np.testing.assert_allclose(own[0], base[0], rtol=1e-5, atol=1e-6)
  assert not np.allclose(own[1], base[1])  # Sample 1 (task 1) reads task 0's memory.


def test_csam_finer_scales_query_coarser_ones_only():
  scales = [jax.random.normal(jax.random.fold_in(KEY, i), (1, s, s, 8)) for i, s in enumerate((8, 4, 2))]
  csam = CrossScaleAttention(heads=2)
  params = opened(csam.init(KEY, scales))
  base = csam.apply(params, scales)
  assert base.shape == (1, 8, 8, 8)
  coarser_changed = csam.apply(params, [scales[0], scales[1], scales[2] + 1.0])
  assert not np.allclose(coarser_changed, base)  # The finest stream reads the coarsest.
  # Identity at initialisation.
  np.testing.assert_array_equal(csam.apply(csam.init(KEY, scales), scales), scales[0])


def test_a_samples_output_depends_on_its_own_features_only():
  """At inference a client restores its own images alone: no other task's features exist."""
  f_b = jax.random.normal(KEY, (4, 8, 8, 16))
  tasks = jnp.array([0, 1, 2, 3])
  neck = SCAMTLNeck(num_tasks=4, heads=2)
  params = opened(neck.init(KEY, f_b, tasks))
  together = neck.apply(params, f_b, tasks)
  for i in range(4):
    alone = neck.apply(params, f_b[i:i + 1], tasks[i:i + 1])
    np.testing.assert_allclose(alone[0], together[i], rtol=1e-5, atol=1e-5)

