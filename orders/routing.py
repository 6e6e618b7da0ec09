"""Websocket routes."""

from __future__ import annotations

from django.urls import path

from orders.consumers import ReviewConsumer

websocket_urlpatterns = [path("ws/review/", ReviewConsumer.as_asgi())]
