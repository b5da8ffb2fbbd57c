"""User-facing errors: one clear line, no traceback, nothing lost.

Command-line entry points (`tavit_jax.cli.common`) catch `TavitError` and print its
message; everything else is a bug and keeps its traceback.
"""


class TavitError(Exception):
  """A mistake the user can fix (missing data, bad file, bad config)."""


class MissingDataError(TavitError):
  """A manual-download folder or a built dataset is not where it should be."""


class BadImageError(TavitError):
  """An image file that cannot be read or does not fit its pair; names the file."""
