"""Passwords out of URLs before a URL reaches a message, a log line or stored metadata.

`redact_url` works on one URL, parsable or not (an unparsable URL is exactly the one an
error message wants to show); `redact_text` finds every URL with credentials in free text,
such as a driver's error message.
"""

from __future__ import annotations

import re

MASK = "***"

# Query parameters that carry a secret (libpq's password=, cloud keys, tokens).
_SECRET_PARAM = re.compile(
    r"(?i)([?&;](?:password|passwd|pwd|pass|secret|token|sslpassword|api[_-]?key|"
    r"access[_-]?key|secret[_-]?key|sas|sig)=)[^&;#\s'\"]*"
)
# scheme://user:password@host in running text. The password part is greedy within the
# token, so a password that itself holds '@' is masked up to the last '@'.
_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*):\S*@")


def redact_url(url: str) -> str:
    """`url` with any password replaced by ``***`` (also when it does not parse).

    ``postgresql://ana:s3cret@db/prod`` -> ``postgresql://ana:***@db/prod``; a URL without
    a scheme (``ana:s3cret@db/prod``) and passwords in the query (``?password=...``) are
    masked too. Masking may take a little more than the password, never less.
    """
    text = _SECRET_PARAM.sub(rf"\1{MASK}", url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    at = rest.rfind("@")
    if at < 0:
        return text
    user, colon, _ = rest[:at].partition(":")
    if not colon:
        return text
    return f"{scheme}{sep}{user}:{MASK}{rest[at:]}"


def redact_text(text: str) -> str:
    """`text` with the password of every ``scheme://user:password@`` URL in it masked."""
    return _SECRET_PARAM.sub(rf"\1{MASK}", _CREDENTIALS.sub(rf"\1:{MASK}@", text))
