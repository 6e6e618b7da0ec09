"""The codec endpoint: Temporal's remote codec protocol, so the Temporal UI can show encrypted payloads.

`POST /codec/decode` and `/codec/encode` take and return `{"payloads": [...]}` (each payload as
protobuf JSON: base64 `metadata` values and `data`); the UI sends the namespace in `X-Namespace`,
which changes nothing here (a payload this app did not encrypt comes back as it is). Who may ask:
a signed-in staff member (the UI sends the app's session cookie, "include credentials") or a bearer
token whose user holds `orders.view_order`. Nobody recognised: 401; recognised without the right:
403. The UI's origin (CODEC_CORS_ORIGINS, by default TEMPORAL_UI_URL's) gets the CORS headers,
the answer to its preflight included.

No CSRF token: the UI cannot send one. A cross-site page could make a signed-in browser post here,
but the answer is readable only by the allowed origins (CORS), and nothing is written.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from lifecycle.codec import EncryptionCodec, UnknownKey
from orders.permissions import API_PERMISSIONS, VIEW_ORDER
from orders.tokens import token_authenticate

ALLOWED_HEADERS = "Authorization, Content-Type, X-Namespace"
PREFLIGHT_MAX_AGE = "600"


def _cors(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    origin = request.headers.get("Origin", "")
    response["Vary"] = "Origin"
    if origin and origin in settings.CODEC_CORS_ORIGINS:
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Credentials"] = "true"
    return response


def _refusal(request: HttpRequest) -> JsonResponse | None:
    """401 for nobody recognised, 403 for someone without the right, None for someone with it."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        user = token_authenticate(token.strip(), permissions=API_PERMISSIONS)
        if user is None:
            return JsonResponse({"detail": "invalid or revoked token"}, status=401)
        if VIEW_ORDER not in user.api_permissions:  # type: ignore[attr-defined]
            return JsonResponse({"detail": f"the token's user lacks {VIEW_ORDER}"}, status=403)
        return None
    user = request.user
    if not user.is_authenticated:
        return JsonResponse({"detail": "sign in as staff, or send a bearer token"}, status=401)
    if not (user.is_active and user.is_staff):
        return JsonResponse({"detail": "staff only"}, status=403)
    return None


def _codec() -> EncryptionCodec | None:
    key = settings.PAYLOAD_ENCRYPTION_KEY
    return EncryptionCodec(key, settings.PAYLOAD_DECRYPTION_KEYS) if key else None


@csrf_exempt
def codec(request: HttpRequest, direction: str) -> HttpResponse:
    if request.method == "OPTIONS":  # the browser's preflight: no credentials, no body
        response = HttpResponse(status=204)
        response["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        return _cors(request, response)
    if request.method != "POST":
        return _cors(request, JsonResponse({"detail": "use POST"}, status=405))
    return _cors(request, _answer(request, direction))


def _answer(request: HttpRequest, direction: str) -> HttpResponse:
    refused = _refusal(request)
    if refused is not None:
        return refused
    try:
        payloads = json_format.Parse(request.body or b"{}", Payloads(), ignore_unknown_fields=True)
    except (json_format.ParseError, UnicodeDecodeError, ValueError) as err:
        return JsonResponse({"detail": f"payloads: not Temporal's payload JSON ({err})"}, status=400)
    codec = _codec()
    items = list(payloads.payloads)
    if codec is not None:
        try:
            convert = codec.decrypt if direction == "decode" else codec.encrypt
            items = [convert(item) for item in items]
        except UnknownKey as err:
            return JsonResponse({"detail": str(err)}, status=400)
    body = json_format.MessageToDict(Payloads(payloads=items))
    return JsonResponse({"payloads": body.get("payloads", [])})
