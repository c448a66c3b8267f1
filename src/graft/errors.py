"""User-facing errors: the CLI prints their message on one line and exits non-zero."""


class GraftError(Exception):
    """Bad input from the user (config, files, data): the message says what and where."""
