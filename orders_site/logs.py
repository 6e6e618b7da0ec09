"""Logging setup: the LOGGING setting, plus the web server's loggers and the activities' order id.

uvicorn configures its own loggers before it imports the app, and a `dictConfig` entry for
`uvicorn.access` would replace its handler (and bring access lines back under
`--no-access-log`), so its loggers are amended as they stand, after Django's LOGGING is applied:
static files are dropped from the access log and, with LOG_FORMAT=json, uvicorn's handlers get
the JSON formatter, each access line carries its request as fields, and Python's warnings are
logged (as JSON) instead of printed. Django points here
through `settings.LOGGING_CONFIG`.

`OrderIdFilter` (on the console handler) gives every line logged inside an activity or a
workflow an `order_id` field, so a JSON log can be searched by order.
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any
from urllib.parse import urlsplit

ACCESS_LOGGER = "uvicorn.access"
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", ACCESS_LOGGER)
SHIPPING_WORKFLOW_PREFIX = "shipping-"  # lifecycle.workflows.shipping_workflow_id


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


class AccessFields(logging.Filter):
    """Puts an access line's request into fields of its own (`client`, `method`, `path`,
    `http_version`, `status_code`), for a JSON log; the message stays as uvicorn wrote it."""

    FIELDS = ("client", "method", "path", "http_version", "status_code")

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == len(self.FIELDS):
            for name, value in zip(self.FIELDS, args, strict=True):
                setattr(record, name, value)
        return True


class OrderIdFilter(logging.Filter):
    """Adds `order_id` to a record logged inside an activity or a workflow of an order.

    Temporal's loggers put the activity's or workflow's info on the record (`temporal_activity`,
    `temporal_workflow`); any other logger called from an activity's thread (the app's own, a
    library's) is matched through the activity's context. The order id is the order workflow's
    id, or its shipping child's without the prefix. A record that names one already keeps it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "order_id", None) is None:
            order_id = _order_id(record)
            if order_id:
                record.order_id = order_id
        return True


def _order_id(record: logging.LogRecord) -> str:
    for extra in ("temporal_activity", "temporal_workflow"):
        info = getattr(record, extra, None)
        if isinstance(info, dict) and info.get("workflow_id"):
            return _order_of(str(info["workflow_id"]), str(info.get("workflow_type", "")))
    from temporalio import activity

    if activity.in_activity():
        info = activity.info()
        return _order_of(info.workflow_id or "", info.workflow_type or "")
    return ""


def _order_of(workflow_id: str, workflow_type: str) -> str:
    if workflow_type == "ShippingWorkflow":
        return workflow_id.removeprefix(SHIPPING_WORKFLOW_PREFIX)
    return workflow_id


def json_formatter(config: dict[str, Any]) -> logging.Formatter:
    """The formatter LOGGING calls `json`, made from its entry there."""
    from pythonjsonlogger.json import JsonFormatter

    options = {key: value for key, value in config["formatters"]["json"].items() if key != "()"}
    return JsonFormatter(**options)


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
    if settings.LOG_FORMAT == "json":
        # Python's warnings too (the `py.warnings` logger), instead of bare text on stderr.
        logging.captureWarnings(True)
        # Served by uvicorn: its handlers exist by now (none otherwise, and nothing changes).
        formatter = json_formatter(config)
        for name in UVICORN_LOGGERS:
            for handler in logging.getLogger(name).handlers:
                handler.setFormatter(formatter)
        if not any(isinstance(f, AccessFields) for f in access.filters):
            access.addFilter(AccessFields())
