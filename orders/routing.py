"""Websocket routes (the review console's live updates arrive with the console)."""

from __future__ import annotations

from typing import Any

websocket_urlpatterns: list[Any] = []
