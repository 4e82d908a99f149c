"""The one exception type users see.

Every error caused by user input (a file, a flag, a name) is raised as a
``SimrlError`` whose message is a single line naming the file, field, value and
what is allowed; the CLI prints that line and exits non-zero without a traceback
(unless ``--debug``).
"""

from __future__ import annotations

import difflib
from typing import Iterable


def did_you_mean(word: str, choices: Iterable[str], lead: str = " (") -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to a mistyped ``word``, else ``""``.

    ``lead="; "`` gives ``; did you mean 'x'?`` for messages that go on after it.
    """
    hint = difflib.get_close_matches(str(word), list(choices), n=1)
    if not hint:
        return ""
    return f" (did you mean '{hint[0]}'?)" if lead == " (" else f"{lead}did you mean '{hint[0]}'?"


class SimrlError(Exception):
    """A user-facing error with a one-line, actionable message."""
