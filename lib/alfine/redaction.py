"""Credentials never appear in what alfine prints: one function that blanks them, and a logging filter.

:func:`redact` blanks a URL's password (``http://user:pass@host`` -> ``http://user:***@host``), AWS
signature parts (``Credential=``, ``Signature=``, ``X-Amz-Security-Token`` and their query-string forms,
as botocore's debug logs show them), access key ids (``AKIA...``/``ASIA...``) and the values of the
credential variables set in the environment. The command runner applies it to error lines, tracebacks
and the summary, and :class:`RedactingFilter` to every log record (stdlib only).
"""

from __future__ import annotations

import logging
import os
import re

MASK = "***"
SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                    "GOOGLE_APPLICATION_CREDENTIALS_JSON", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN")
_PATTERNS = [
    (re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@'\"]*):[^/\s@'\"]*@"), rf"\1:{MASK}@"),
    (re.compile(r"((?:X-Amz-)?(?:Credential|Signature|Security-Token)=)[^&\s,'\"]+", re.IGNORECASE), rf"\1{MASK}"),
    (re.compile(r"((?:x-amz-security-token|authorization)['\"]?\s*[:=]\s*['\"]?)[^'\"\n]+", re.IGNORECASE),
     rf"\1{MASK}"),
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), MASK),
]
_MIN_SECRET = 8  # shorter values (test credentials such as "testing") are not worth blanking everywhere


def redact(text: str) -> str:
    """``text`` with credentials blanked (see the module)."""
    text = str(text)
    for variable in SECRET_VARIABLES:
        value = os.environ.get(variable)
        if value and len(value) >= _MIN_SECRET:
            text = text.replace(value, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Blanks credentials in every record a handler emits (its message with its arguments applied)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
