"""Data layer: TFDS builders, degradations, grain pipelines (see SPEC §3)."""
