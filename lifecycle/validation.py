"""Checks of order input shared by the API, the console, admin and the workflow (Django-free)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

# Matched whole with fullmatch: `$` would also accept a trailing newline ("nl2\n" beside "nl2").
ORDER_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")
ADDRESS_REQUIRED = ("street", "city", "zip")
ADDRESS_FIELD_MAX = 200
ADDRESS_MAX_FIELDS = 12
UNDELIVERABLE_ZIP = "00000"


def text_problem(value: str) -> str:
    """Why a string cannot be stored and shown as text (NUL, or a lone surrogate), or ""."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text"
    return ""


REASON_MAX = 500  # characters of a cancellation's reason


def reason_problem(reason: Any) -> str:
    """Why `reason` cannot be a cancellation's reason (too long, not text), or ""."""
    if not isinstance(reason, str):
        return "must be a string"
    if len(reason) > REASON_MAX:
        return f"must be at most {REASON_MAX} characters"
    return text_problem(reason)


def order_id_problem(order_id: str) -> str:
    if not ORDER_ID_PATTERN.fullmatch(order_id):
        return "must be 1-100 characters: letters, digits and . _ : - (starting with a letter or digit)"
    return ""


def address_problems(address: Any) -> dict[str, str]:
    """Per-field problems of a shipping address; empty when it is acceptable."""
    if not isinstance(address, dict):
        return {"address": "must be an object with street, city and zip"}
    problems: dict[str, str] = {}
    for name in ADDRESS_REQUIRED:
        value = address.get(name)
        if not isinstance(value, str) or not value.strip():
            problems[f"address.{name}"] = "is required and must be a non-empty string"
    if len(address) > ADDRESS_MAX_FIELDS:
        problems["address"] = f"has more than {ADDRESS_MAX_FIELDS} fields"
    for name, value in address.items():
        if not isinstance(name, str) or len(name) > 50 or text_problem(name):
            problems["address"] = "field names must be text of at most 50 characters"
        elif not isinstance(value, str):
            problems.setdefault(f"address.{name}", "must be a string")
        elif len(value) > ADDRESS_FIELD_MAX:
            problems[f"address.{name}"] = f"must be at most {ADDRESS_FIELD_MAX} characters"
        elif text_problem(value):
            problems[f"address.{name}"] = text_problem(value)
    return problems


def order_total(items: list[dict[str, Any]]) -> Decimal:
    """The exact total of line items whose price is a decimal string or number."""
    total = Decimal("0")
    for item in items:
        total += Decimal(str(item["price"])) * int(item["quantity"])
    return total.quantize(Decimal("0.01"))


def order_problems(items: Any) -> str:
    """Why the validation step rejects these items (empty when they are acceptable)."""
    if not isinstance(items, list) or not items:
        return "an order needs at least one item"
    for index, item in enumerate(items):
        try:
            price = Decimal(str(item["price"]))
            quantity = int(item["quantity"])
        except (KeyError, TypeError, ValueError, InvalidOperation):
            return f"item {index} needs a name, a price and a quantity"
        if not str(item.get("name", "")).strip():
            return f"item {index} has no name"
        if price <= 0 or quantity <= 0:
            return f"item {index} must have a positive price and quantity"
    return ""
