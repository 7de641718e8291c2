"""Errors that are the user's to fix: the CLI prints them in one line and exits with status 2."""


class UserError(Exception):
    """A mistake in the user's input (file, option, record); the message says where and what."""


class TrainingDiverged(RuntimeError):
    """The loss became non-finite; the last good checkpoint is kept."""
