"""Errors the CLI answers in one line, and the exit status of each (documented in `anymae --help`)."""

EXIT_USER_ERROR = 2  # a mistake in the user's input, or a damaged / incompatible run folder
EXIT_DIVERGED = 3  # training stopped on a non-finite loss or non-finite weights


class UserError(ValueError):
    """A mistake in the user's input (file, option, record); the message says where and what.

    A ValueError, so Python callers of the API can catch it as one; `UserTypeError` is the
    TypeError kind (an argument of the wrong type)."""


class UserTypeError(UserError, TypeError):
    """An API argument of the wrong type; the message names the argument and the type it takes."""


class TrainingDiverged(RuntimeError):
    """The loss or the weights became non-finite; the message names the step and the checkpoint kept."""


class PeerLost(RuntimeError):
    """Another process of a multi-process run failed or stopped answering; this one stopped too."""
