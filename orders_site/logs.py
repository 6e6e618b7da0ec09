"""Logging setup: the LOGGING setting, plus a filter on the web server's access log.

uvicorn configures its own loggers before it imports the app, and a `dictConfig` entry for
`uvicorn.access` would replace its handler (and bring access lines back under
`--no-access-log`), so the filter is attached to that logger as it stands, after Django's
LOGGING is applied. Django points here through `settings.LOGGING_CONFIG`.
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any
from urllib.parse import urlsplit

ACCESS_LOGGER = "uvicorn.access"


class SkipStaticAccess(logging.Filter):
    """Drops the access lines of requests for static files (the console's styles and scripts).

    uvicorn logs each request as `'%s - "%s %s HTTP/%s" %d'` with (client, method, path,
    HTTP version, status) as the record's args; a record of another shape passes untouched.
    """

    def __init__(self, prefix: str = "/static/") -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            return not args[2].startswith(self.prefix)
        return True


def static_prefix(static_url: str) -> str | None:
    """The path under which the app serves static files, from STATIC_URL ("static/" -> "/static/");
    None when static files share the root with everything else (nothing to tell apart)."""
    path = urlsplit(static_url).path.strip("/")
    return f"/{path}/" if path else None


def configure(config: dict[str, Any]) -> None:
    """Django's LOGGING_CONFIG: apply LOGGING, then keep static files out of the access log."""
    from django.conf import settings

    logging.config.dictConfig(config)
    prefix = static_prefix(settings.STATIC_URL)
    access = logging.getLogger(ACCESS_LOGGER)
    if prefix and not any(isinstance(f, SkipStaticAccess) for f in access.filters):
        access.addFilter(SkipStaticAccess(prefix))
