"""Data layer: TFDS builders, degradations, grain pipelines (see docs/design.md §3)."""
