"""Encrypted payloads: every payload the app and the workers send to Temporal, AES-GCM encrypted.

With PAYLOAD_ENCRYPTION_KEY set, workflow inputs and results, activity arguments and results,
Update and signal arguments, query answers and failure details (message and stack trace too) reach
Temporal's history and UI as `binary/encrypted` payloads. Each names the key that encrypted it
(`encryption-key-id`, derived from the key), so a rotated-out key kept in PAYLOAD_DECRYPTION_KEYS
still opens the histories it wrote. A payload that is not encrypted (written before encryption was
turned on) is read as it is. Search attributes are not payloads and stay readable (`OrderState`).

This module imports nothing from Django: the settings parse keys with `parse_key`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import os
from collections.abc import Iterable, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
KEY_BYTES = 32
NONCE_BYTES = 12


class BadKey(ValueError):
    """A key setting that is not base64 of 32 bytes."""


def parse_key(text: str, setting: str) -> bytes:
    """The 32 bytes a key setting holds as base64 (standard or URL-safe alphabet)."""
    value = text.strip()
    try:
        key = base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise BadKey(f"{setting} is not valid base64 (make one with: openssl rand -base64 32)") from None
    if len(key) != KEY_BYTES:
        raise BadKey(f"{setting} must be base64 of {KEY_BYTES} bytes, not {len(key)} (openssl rand -base64 32)")
    return key


def key_id(key: bytes) -> str:
    """A name for the key that reveals nothing about it: the start of its SHA-256."""
    return hashlib.sha256(key).hexdigest()[:16]


def new_key() -> str:
    """A fresh key, as PAYLOAD_ENCRYPTION_KEY takes it."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


class UnknownKey(ValueError):
    """A payload encrypted with a key this process does not hold."""


class EncryptionCodec(PayloadCodec):
    """AES-GCM with a random 96-bit nonce per payload: `data` is nonce + ciphertext (with tag) of
    the whole original Payload, so its encoding and other metadata are hidden too."""

    def __init__(self, key: bytes, old_keys: Iterable[bytes] = ()) -> None:
        self.key_id = key_id(key)
        self._encryptor = AESGCM(key)
        self._decryptors = {key_id(k): AESGCM(k) for k in old_keys}
        self._decryptors[self.key_id] = self._encryptor

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._encryptor.encrypt(nonce, payload.SerializeToString(), None)
        return Payload(metadata={"encoding": ENCODING, KEY_ID: self.key_id.encode()}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before encryption was turned on
        name = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        decryptor = self._decryptors.get(name)
        if decryptor is None:
            raise UnknownKey(
                f"payload encrypted with key {name!r}, which is neither PAYLOAD_ENCRYPTION_KEY nor in "
                "PAYLOAD_DECRYPTION_KEYS"
            )
        try:
            plain = decryptor.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], None)
        except InvalidTag:
            raise UnknownKey(f"payload with key id {name!r} does not decrypt (altered?)") from None
        return Payload.FromString(plain)


def data_converter(codec: PayloadCodec | None) -> DataConverter:
    """The SDK's default converter, plus `codec` on every payload and failure details (message and
    stack trace moved into the encoded attributes) when there is one."""
    if codec is None:
        return DataConverter.default
    return dataclasses.replace(
        DataConverter.default,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
