"""Errors that report bad input (a config, a data file, a saved model, an unreachable service).

The jobs print these as one clear line and exit nonzero (:func:`raymm.cli.report_input_errors`);
anything else is a bug and keeps its traceback.
"""


class InputError(ValueError):
    """Bad input from the user: the message says what is wrong and where (file, key, row)."""


class ModelMismatchError(InputError):
    """A saved model does not fit the dataset or the stage it is given to."""


class TrackingUnavailableError(InputError, ConnectionError):
    """The MLflow tracking store cannot be reached or used."""


class DivergedError(InputError):
    """Training produced a non-finite loss or weights (usually a learning rate or loss weight too
    large); the message names the stage, epoch, step and loss terms."""
