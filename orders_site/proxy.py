"""The client's address as django-axes counts it (settings.AXES_CLIENT_IP_CALLABLE).

Behind a TLS proxy (BEHIND_TLS_PROXY) every request arrives from the proxy's address: counted by
that, five wrong passwords from anyone would lock a reviewer out for everyone behind the proxy.
There the proxy's X-Forwarded-For names the client: the proxy appends the address it saw
(nginx `$proxy_add_x_forwarded_for`, Caddy, Traefik and cloud load balancers do), so the
right-most entry is the one a client cannot forge; whatever a client sent itself is to its left.
Without a proxy the header is the client's own words and is ignored.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    remote = request.META.get("REMOTE_ADDR")
    if not settings.BEHIND_TLS_PROXY:
        return remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    nearest = forwarded.rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(nearest))
    except ValueError:  # no header, or not an address: the proxy's own request
        return remote
