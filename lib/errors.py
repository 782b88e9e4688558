"""The user-error family: mistakes in what the user gave (a file, a field, a parameter), not bugs in the code.

Every ``python -m lib.X`` answers an exception of this family with ONE line naming the file, the track and the field,
and exit status 2 (:func:`lib.cli.run_main`); anything else is a programming error and keeps its traceback.

- :class:`UserError` — the base;
- :class:`InputError` — also a ``ValueError``: malformed data or a bad parameter (``ConfigError``, ``DatasetError``,
  ``ReleaseError``, invalid JSON, a truncated checkpoint, a checkpoint of another configuration);
- :class:`MissingInputError` — also a ``FileNotFoundError``: a file or folder that the step needs is absent.

Plain ``FileNotFoundError`` / ``IsADirectoryError`` / ``NotADirectoryError`` / ``PermissionError`` raised while opening
the user's files count as user errors too (:data:`USER_ERRORS`).
"""

from __future__ import annotations


class UserError(Exception):
    """An error in the user's input; the message is one line that names the file, track and field."""


class InputError(UserError, ValueError):
    """Malformed input (data, parameter, checkpoint)."""


class MissingInputError(UserError, FileNotFoundError):
    """A file or folder the step needs is not there."""


USER_ERRORS: tuple[type[BaseException], ...] = (UserError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
                                                PermissionError)


class CorruptFileError(InputError, RuntimeError):
    """A file that exists but cannot be read: truncated checkpoint, damaged state (names the file)."""


class ConfigMismatchError(InputError, RuntimeError):
    """A checkpoint, state or embedding made with another configuration than the one given (names both)."""
