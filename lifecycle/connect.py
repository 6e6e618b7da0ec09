"""The one place a Temporal client is made, for the web app, `runworker` and the commands.

Where it connects: `TEMPORAL_ADDRESS` and `TEMPORAL_NAMESPACE` (the app's settings, which
`temporalio.envconfig` reads under the same names). How: whatever `temporalio.envconfig` makes
of these variables, passed to it from the settings (`TEMPORAL_CLIENT_ENV`):

- `TEMPORAL_API_KEY`: an API key (Temporal Cloud); turns TLS on.
- `TEMPORAL_TLS` (`true`), `TEMPORAL_TLS_CLIENT_CERT_PATH` / `_DATA`, `TEMPORAL_TLS_CLIENT_KEY_PATH`
  / `_DATA` (mTLS), `TEMPORAL_TLS_SERVER_CA_CERT_PATH` / `_DATA` (a private CA),
  `TEMPORAL_TLS_SERVER_NAME` (SNI), `TEMPORAL_TLS_DISABLE_HOST_VERIFICATION`.
- `TEMPORAL_CONFIG_FILE` and `TEMPORAL_PROFILE`: a TOML profile as the `temporal` CLI writes
  them; its address and namespace give way to the two settings above. Without
  TEMPORAL_CONFIG_FILE no file is read, so a developer's own CLI profile never redirects the app.

What every client gets here, and only here: the data converter (encrypted payloads when
PAYLOAD_ENCRYPTION_KEY is set, lifecycle/codec.py) and the interceptors (tracing when
OTEL_EXPORTER_OTLP_ENDPOINT is set, lifecycle/tracing.py). A worker made from the client uses
both. `runtime` lets `runworker` pass a Runtime that serves the SDK's metrics.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfigProfile, ClientConnectConfig
from temporalio.runtime import Runtime

from lifecycle import tracing
from lifecycle.codec import EncryptionCodec, data_converter


def connect_config(*, address: str | None = None, namespace: str | None = None) -> ClientConnectConfig:
    """The keyword arguments of `Client.connect` for where and how to connect (not what to attach)."""
    environ = dict(settings.TEMPORAL_CLIENT_ENV)
    environ["TEMPORAL_ADDRESS"] = address or settings.TEMPORAL_ADDRESS
    environ["TEMPORAL_NAMESPACE"] = namespace or settings.TEMPORAL_NAMESPACE
    profile = ClientConfigProfile.load(
        profile=environ.get("TEMPORAL_PROFILE"),
        disable_file="TEMPORAL_CONFIG_FILE" not in environ,
        override_env_vars=environ,
    )
    return profile.to_client_connect_config()


def app_data_converter() -> DataConverter:
    """The SDK's converter, encrypting every payload when PAYLOAD_ENCRYPTION_KEY is set."""
    key = settings.PAYLOAD_ENCRYPTION_KEY
    return data_converter(EncryptionCodec(key, settings.PAYLOAD_DECRYPTION_KEYS) if key else None)


async def connect(
    *, address: str | None = None, namespace: str | None = None, runtime: Runtime | None = None
) -> Client:
    """A new client for the app. Raises RuntimeError when Temporal cannot be reached (the core SDK's
    way) and ValueError for an unreadable TLS file or profile."""
    options: dict[str, Any] = dict(connect_config(address=address, namespace=namespace))
    return await Client.connect(
        **options,
        data_converter=app_data_converter(),
        interceptors=tracing.client_interceptors(),
        runtime=runtime,
    )
