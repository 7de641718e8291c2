"""Errors the CLI answers in one line, and the exit status of each (documented in `anymae --help`)."""

EXIT_USER_ERROR = 2  # a mistake in the user's input, or a damaged / incompatible run folder
EXIT_DIVERGED = 3  # training stopped on a non-finite loss or non-finite weights


class UserError(Exception):
    """A mistake in the user's input (file, option, record); the message says where and what."""


class TrainingDiverged(RuntimeError):
    """The loss or the weights became non-finite; the message names the step and the checkpoint kept."""


class PeerLost(RuntimeError):
    """Another process of a multi-process run failed or stopped answering; this one stopped too."""
