"""The command-line tools (`tavit-*`), one module each; `common` holds what they share."""
