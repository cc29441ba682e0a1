"""The project's own error type for problems the user fixes: a config value, a data file, a checkpoint path.

The entry points print these as one line (`error: ...`, full traceback with debug=true). Anything else, a
ValueError from torch or a bug of ours, shows its traceback: a real bug must not look like a user error.
`UserError` subclasses ValueError so that code catching ValueError around validation keeps working.
"""


class UserError(ValueError):
    """A problem the user fixes on the command line, in a yaml, or in the data: the message says how."""


class NonFiniteError(RuntimeError):
    """Training diverged: too many non-finite steps, or weights that must not be saved."""


def user_errors() -> tuple[type[BaseException], ...]:
    """The errors that are the user's to fix, shown as one line by the entry points (full traceback with
    debug=true) and by a spawned child's parent: anything else (a ValueError from torch, a bug of ours) shows
    its traceback. ConfigError and BadExampleError are UserErrors."""
    from src.utils.atomic import OutputError

    return (UserError, FileNotFoundError, OutputError, NonFiniteError)

