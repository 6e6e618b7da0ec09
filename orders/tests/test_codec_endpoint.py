"""/codec/decode and /codec/encode: Temporal's remote codec protocol for the Temporal UI."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from django.test import Client
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from lifecycle.codec import ENCODING, new_key, parse_key
from lifecycle.connect import app_data_converter

UI_ORIGIN = "http://localhost:8233"
ADDRESS = {"street": "1 Secret Lane", "city": "Boston", "zip": "02101"}


@pytest.fixture
def key(settings: Any) -> bytes:
    settings.PAYLOAD_ENCRYPTION_KEY = parse_key(new_key(), "test")
    settings.PAYLOAD_DECRYPTION_KEYS = []
    settings.CODEC_CORS_ORIGINS = [UI_ORIGIN]
    return settings.PAYLOAD_ENCRYPTION_KEY


def encrypted_body(value: Any) -> str:
    """What the UI posts: the payloads of a history event, as protobuf JSON."""
    payloads = asyncio.run(app_data_converter().encode([value]))
    assert payloads[0].metadata["encoding"] == ENCODING
    return json_format.MessageToJson(Payloads(payloads=payloads))


def post(client: Client, direction: str, body: str, **headers: Any) -> Any:
    return client.post(
        f"/codec/{direction}", body, content_type="application/json", HTTP_X_NAMESPACE="default", **headers
    )


def plain_values(response: Any) -> list[Any]:
    payloads = json_format.Parse(response.content, Payloads())
    return [json.loads(p.data) for p in payloads.payloads]


@pytest.mark.django_db
def test_staff_session_decodes_what_the_app_encrypted(key: bytes, client: Client, admin_user: Any) -> None:
    client.force_login(admin_user)
    response = post(client, "decode", encrypted_body(ADDRESS), HTTP_ORIGIN=UI_ORIGIN)
    assert response.status_code == 200
    assert plain_values(response) == [ADDRESS]
    assert response["Access-Control-Allow-Origin"] == UI_ORIGIN
    assert response["Access-Control-Allow-Credentials"] == "true"


def test_a_view_order_token_encodes_and_decodes(key: bytes, api: Client) -> None:
    plain = json_format.MessageToJson(Payloads(payloads=app_data_converter().payload_converter.to_payloads([ADDRESS])))
    encoded = post(api, "encode", plain)
    assert encoded.status_code == 200
    assert b"Secret Lane" not in encoded.content
    decoded = post(api, "decode", encoded.content.decode())
    assert plain_values(decoded) == [ADDRESS]


@pytest.mark.django_db
def test_anonymous_is_401_and_learns_nothing(key: bytes, client: Client) -> None:
    response = post(client, "decode", encrypted_body(ADDRESS), HTTP_ORIGIN=UI_ORIGIN)
    assert response.status_code == 401
    assert b"Secret" not in response.content
    assert response["Access-Control-Allow-Origin"] == UI_ORIGIN  # so the UI can show why
    assert post(client, "decode", "{}", HTTP_AUTHORIZATION="Bearer olc_not-a-token").status_code == 401


@pytest.mark.django_db
def test_signed_in_non_staff_and_a_token_without_view_order_are_403(
    key: bytes, client: Client, django_user_model: Any
) -> None:
    from orders.tokens import token_create

    reviewer = django_user_model.objects.create_user("not-staff")
    client.force_login(reviewer)
    assert post(client, "decode", encrypted_body(ADDRESS)).status_code == 403
    token = token_create(user=reviewer, name="no rights")
    anonymous = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert post(anonymous, "decode", encrypted_body(ADDRESS)).status_code == 403


@pytest.mark.django_db
def test_cors_preflight_allows_the_temporal_ui_with_credentials_and_no_one_else(key: bytes, client: Client) -> None:
    preflight = client.options(
        "/codec/decode",
        HTTP_ORIGIN=UI_ORIGIN,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type,x-namespace",
    )
    assert preflight.status_code == 204
    assert preflight["Access-Control-Allow-Origin"] == UI_ORIGIN
    assert preflight["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in preflight["Access-Control-Allow-Methods"]
    allowed = preflight["Access-Control-Allow-Headers"].lower()
    assert "x-namespace" in allowed and "content-type" in allowed
    elsewhere = client.options("/codec/decode", HTTP_ORIGIN="https://evil.example")
    assert "Access-Control-Allow-Origin" not in elsewhere


@pytest.mark.django_db
def test_a_body_that_is_not_payload_json_is_400_naming_payloads(key: bytes, client: Client, admin_user: Any) -> None:
    client.force_login(admin_user)
    response = post(client, "decode", '{"payloads": "nope"}')
    assert response.status_code == 400
    assert "payloads" in response.json()["detail"]


@pytest.mark.django_db
def test_a_payload_of_a_key_no_longer_held_is_400_naming_the_setting(
    key: bytes, client: Client, admin_user: Any, settings: Any
) -> None:
    body = encrypted_body(ADDRESS)
    settings.PAYLOAD_ENCRYPTION_KEY = parse_key(new_key(), "test")  # rotated, old key dropped
    client.force_login(admin_user)
    response = post(client, "decode", body)
    assert response.status_code == 400
    assert "PAYLOAD_DECRYPTION_KEYS" in response.json()["detail"]
    settings.PAYLOAD_DECRYPTION_KEYS = [key]  # kept for decoding: readable again
    assert plain_values(post(client, "decode", body)) == [ADDRESS]
