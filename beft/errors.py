"""Errors that mean "the input is wrong", each with a message naming the bad value and the valid choices.

Entry points turn these into a one-line message and a non-zero exit instead of a traceback.
"""


class BeftError(ValueError):
    """Bad input: a config value, a data file, a model folder."""


class ConfigError(BeftError):
    pass


class DataError(BeftError):
    """A data folder, file or row that cannot be used; the message names the file (and line)."""
