"""lifecycle.connect: the one Temporal client factory, configured by temporalio.envconfig's variables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from temporalio.converter import DefaultFailureConverterWithEncodedAttributes
from temporalio.service import TLSConfig

from lifecycle.codec import EncryptionCodec, new_key, parse_key
from lifecycle.connect import connect, connect_config
from scripts.stack import REPO_ROOT, app_environment


def test_defaults_are_the_settings_address_and_namespace_without_tls(settings: Any) -> None:
    settings.TEMPORAL_CLIENT_ENV = {}
    config = connect_config()
    assert config["target_host"] == settings.TEMPORAL_ADDRESS
    assert config["namespace"] == settings.TEMPORAL_NAMESPACE
    assert "tls" not in config and "api_key" not in config


def test_an_api_key_turns_tls_on(settings: Any) -> None:
    settings.TEMPORAL_CLIENT_ENV = {"TEMPORAL_API_KEY": "secret-key"}
    settings.TEMPORAL_ADDRESS = "my-ns.a1b2c.tmprl.cloud:7233"
    settings.TEMPORAL_NAMESPACE = "my-ns.a1b2c"
    config = connect_config()
    assert config["api_key"] == "secret-key"
    assert config["tls"] is True
    assert (config["target_host"], config["namespace"]) == ("my-ns.a1b2c.tmprl.cloud:7233", "my-ns.a1b2c")


def test_mtls_files_and_server_name_end_up_in_the_tls_config(settings: Any, tmp_path: Path) -> None:
    for name in ("client.pem", "client.key", "ca.pem"):
        (tmp_path / name).write_bytes(f"--- {name} ---".encode())
    settings.TEMPORAL_CLIENT_ENV = {
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(tmp_path / "client.pem"),
        "TEMPORAL_TLS_CLIENT_KEY_PATH": str(tmp_path / "client.key"),
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(tmp_path / "ca.pem"),
        "TEMPORAL_TLS_SERVER_NAME": "temporal.internal",
    }
    tls = connect_config()["tls"]
    assert isinstance(tls, TLSConfig)
    assert tls.client_cert == b"--- client.pem ---"
    assert tls.client_private_key == b"--- client.key ---"
    assert tls.server_root_ca_cert == b"--- ca.pem ---"
    assert tls.domain == "temporal.internal"


def test_a_toml_profile_is_read_only_when_named_and_the_address_setting_wins(settings: Any, tmp_path: Path) -> None:
    profile = tmp_path / "temporal.toml"
    profile.write_text('[profile.prod]\naddress = "elsewhere:7233"\napi_key = "from-the-file"\n')
    settings.TEMPORAL_CLIENT_ENV = {"TEMPORAL_CONFIG_FILE": str(profile), "TEMPORAL_PROFILE": "prod"}
    config = connect_config()
    assert config["api_key"] == "from-the-file"
    assert config["target_host"] == settings.TEMPORAL_ADDRESS
    settings.TEMPORAL_CLIENT_ENV = {"TEMPORAL_PROFILE": "prod"}  # no file named: none read
    assert "api_key" not in connect_config()


def test_the_settings_read_envconfig_variables_from_the_environment() -> None:
    """Under the names temporalio.envconfig uses; the stack's allow-list passes them (left at default)."""
    env = {**app_environment({}), "TEMPORAL_API_KEY": "k", "TEMPORAL_TLS_CLIENT_CERT_PATH": "/x.pem"}
    code = "from django.conf import settings; print(sorted(settings.TEMPORAL_CLIENT_ENV.items()))"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert (
        result.stdout.strip().splitlines()[-1]
        == "[('TEMPORAL_API_KEY', 'k'), ('TEMPORAL_TLS_CLIENT_CERT_PATH', '/x.pem')]"
    )


@pytest.mark.parametrize("value", ["not base64!", "c2hvcnQ="])
def test_a_bad_encryption_key_stops_startup_with_one_line_naming_the_setting(value: str) -> None:
    env = {**app_environment({}), "PAYLOAD_ENCRYPTION_KEY": value}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "PAYLOAD_ENCRYPTION_KEY" in lines[0], result.stderr
    assert value not in result.stderr  # the value itself is not echoed


def test_a_real_connect_with_the_defaults(temporal: Any, settings: Any) -> None:
    settings.TEMPORAL_ADDRESS = temporal.address
    settings.TEMPORAL_CLIENT_ENV = {}
    settings.PAYLOAD_ENCRYPTION_KEY = None

    async def connected() -> Any:
        client = await connect()
        await client.service_client.check_health()
        return client

    client = temporal.run(connected())
    assert client.namespace == "default"
    assert client.data_converter.payload_codec is None


def test_with_a_key_every_client_encrypts_payloads_and_failure_details(temporal: Any, settings: Any) -> None:
    settings.TEMPORAL_ADDRESS = temporal.address
    settings.PAYLOAD_ENCRYPTION_KEY = parse_key(new_key(), "test")
    settings.PAYLOAD_DECRYPTION_KEYS = [parse_key(new_key(), "test")]
    client = temporal.run(connect())
    converter = client.data_converter
    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert isinstance(converter.failure_converter, DefaultFailureConverterWithEncodedAttributes)


def test_no_module_of_the_app_connects_on_its_own() -> None:
    """lifecycle/connect.py is the one place a client is made (scripts/ and tests stand outside the app)."""
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for folder in ("lifecycle", "orders", "orders_site")
        for path in (REPO_ROOT / folder).rglob("*.py")
        if "tests" not in path.parts and path.name != "connect.py" and "Client.connect(" in path.read_text()
    ]
    assert not offenders
