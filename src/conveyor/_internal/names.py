"""One rule set for user-given names (models, aliases, datasets, monitors).

Python's ``$`` also matches before a final newline, so a pattern checked with
``re.match(r"^...$")`` lets ``"production\\n"`` through as a second, different
``production``. Names are therefore matched whole (``fullmatch``), and the characters
that are never part of a name (whitespace around it, line breaks, control characters)
get a message of their own that says what to remove.
"""

from __future__ import annotations

import re
import unicodedata


def name_problem(value: object) -> str | None:
    """Why `value` can never be a name, or None when nothing of that kind is wrong."""
    if not isinstance(value, str):
        return f"it is a {type(value).__name__}, not a string"
    if not value:
        return "it is empty"
    if value.rstrip("\r\n") != value:
        return "it ends with a line break; remove it"
    if value.strip() != value:
        return "it has whitespace around it; remove it"
    for char in value:
        if unicodedata.category(char).startswith("C"):  # Cc control, Cf format, ...
            return f"it contains the control character U+{ord(char):04X}; remove it"
    return None


def check_name(
    value: object, pattern: re.Pattern[str], kind: str, rule: str, error: type[Exception]
) -> str:
    """Return `value` when the whole of it matches `pattern`, else raise `error`.

    Args:
        value: The name given by the user.
        pattern: What a valid name looks like (matched against the whole value).
        kind: What the name names, for the message ("model name", "alias").
        rule: The rule in words, with an example.
        error: The exception class to raise.

    Raises:
        Exception: of class `error`, naming the value, what is wrong with it and the rule.
    """
    problem = name_problem(value)
    if problem is None and isinstance(value, str) and pattern.fullmatch(value):
        return value
    detail = f": {problem}" if problem else ""
    raise error(f"Invalid {kind} {value!r}{detail}. {rule}")
