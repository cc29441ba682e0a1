"""The project's own error type for problems the user fixes: a config value, a data file, a checkpoint path.

The entry points print these as one line (`error: ...`, full traceback with debug=true). Anything else, a
ValueError from torch or a bug of ours, shows its traceback: a real bug must not look like a user error.
`UserError` subclasses ValueError so that code catching ValueError around validation keeps working.
"""


class UserError(ValueError):
    """A problem the user fixes on the command line, in a yaml, or in the data: the message says how."""
