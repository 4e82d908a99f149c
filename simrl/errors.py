"""The one exception type users see.

Every error caused by user input (a file, a flag, a name) is raised as a
``SimrlError`` whose message is a single line naming the file, field, value and
what is allowed; the CLI prints that line and exits non-zero without a traceback
(unless ``--debug``).
"""


class SimrlError(Exception):
    """A user-facing error with a one-line, actionable message."""
