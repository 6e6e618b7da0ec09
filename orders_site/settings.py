"""Settings for Order Lifecycle, read from the environment with django-environ.

Every value has a development default so that `make run` works on a fresh clone; production
values come only from the environment (see README, "Configuration").
"""

from __future__ import annotations

import importlib.util
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from lifecycle.codec import BadKey, parse_key

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = BASE_DIR / ".data"

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
# The development default starts with "django-insecure-" on purpose: `check --deploy` reports such a
# key (security.W009), so a production deploy that forgot to set SECRET_KEY fails its check.
SECRET_KEY = env.str("SECRET_KEY", default="django-insecure-order-lifecycle-development-key-never-use-in-production")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # daphne makes `manage.py runserver` serve ASGI (HTTP and websockets) in development; it is a
    # development requirement only (the image serves with uvicorn and does not ship it).
    *(["daphne"] if importlib.util.find_spec("daphne") else []),
    # lifecycle must come before channels: both define `runworker`, and ours must win.
    "lifecycle",
    "orders",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",  # login throttling; after django.contrib.auth, whose signals it listens to
    "channels",
    "ninja",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "orders.middleware.ContentSecurityPolicyMiddleware",
    "orders.middleware.StaticFilesMiddleware",  # WhiteNoise, async-capable
    "orders.middleware.JsonErrorMiddleware",
    "orders.middleware.BodySizeLimitMiddleware",
    "orders.middleware.RefuseNulMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "orders.middleware.ReaderTimeZoneMiddleware",  # times on pages in the reader's zone (a cookie)
    # Last, as django-axes requires: it turns a login refused during a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# The JSON API's order paths (orders_site/asgi.py): bearer tokens, no session, cookies or pages,
# so no session, CSRF, auth, messages, lockout or static-file layers.
API_MIDDLEWARE = [
    "orders.middleware.ApiSecurityMiddleware",  # SecurityMiddleware's hooks, on the event loop
    "orders.middleware.ContentSecurityPolicyMiddleware",
    "orders.middleware.JsonErrorMiddleware",
    "orders.middleware.BodySizeLimitMiddleware",
    "orders.middleware.RefuseNulMiddleware",
    "orders.middleware.ApiXFrameOptionsMiddleware",
]

ROOT_URLCONF = "orders_site.urls"
ASGI_APPLICATION = "orders_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'orders.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while a worker writes; IMMEDIATE takes the write lock at
    # BEGIN so two writers queue on the busy timeout instead of failing with "database is locked".
    DATA_DIR.mkdir(exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # A file, not memory: worker threads and processes in the tests share the test database.
    DATABASES["default"]["TEST"] = {"NAME": env.str("SQLITE_TEST_PATH", default=str(DATA_DIR / "test-orders.sqlite3"))}
else:
    # Django's PostgreSQL backend, checking each pooled connection as it is borrowed (its docstring).
    DATABASES["default"]["ENGINE"] = "orders_site.postgresql"
    # A pool per process (psycopg_pool): a request or an activity attempt borrows a connection
    # instead of forking a new PostgreSQL backend; a connection found dead (e.g. terminated by the
    # server) is discarded when borrowed and the next one taken. 0 turns pooling off (then
    # CONN_MAX_AGE applies).
    DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=20)
    if DB_POOL_MAX_SIZE > 0:
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": DB_POOL_MAX_SIZE,
            "timeout": env.float("DB_POOL_TIMEOUT_SECONDS", default=10.0),
        }
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        # Off, or the pool would check too, sleeping seconds after each dead connection it finds.
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/review/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the apps' static folders when collectstatic has not been run (make run).
WHITENOISE_USE_FINDERS = True

# --- Request limits -------------------------------------------------------------------------
API_MAX_BODY_BYTES = 64 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- Channels -------------------------------------------------------------------------------
# Each web process watches the database for order changes itself and pushes them to its own
# websockets, so the in-memory layer is enough even with several web processes.
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
REVIEW_FEED_INTERVAL_SECONDS = env.float("REVIEW_FEED_INTERVAL_SECONDS", default=0.25)
REVIEW_PAGE_SIZE = 50

# --- Temporal and the order lifecycle -------------------------------------------------------
TEMPORAL_ADDRESS = env.str("TEMPORAL_ADDRESS", default="localhost:7233")
TEMPORAL_NAMESPACE = env.str("TEMPORAL_NAMESPACE", default="default")
TEMPORAL_UI_URL = env.str("TEMPORAL_UI_URL", default="http://localhost:8233")
ORDER_TASK_QUEUE = env.str("ORDER_TASK_QUEUE", default="order-tq")
SHIPPING_TASK_QUEUE = env.str("SHIPPING_TASK_QUEUE", default="shipping-tq")
# A day: a realistic window for a person to review an order (tests set a shorter one).
APPROVAL_TIMEOUT_SECONDS = env.float("APPROVAL_TIMEOUT_SECONDS", default=86400.0)
# Reviewer teams (lifecycle.review). An order whose total is at least FOUR_EYES_MIN_TOTAL needs
# two approvers (empty: never); a claim lapses after CLAIM_TTL_SECONDS; an order still unapproved
# ESCALATE_AFTER_SECONDS after review began is escalated to the Supervisors (0: never).
FOUR_EYES_MIN_TOTAL = env.str("FOUR_EYES_MIN_TOTAL", default="1000.00")
try:
    Decimal(FOUR_EYES_MIN_TOTAL.strip() or "0")
except InvalidOperation as err:
    raise ImproperlyConfigured(f"FOUR_EYES_MIN_TOTAL must be an amount or empty, not {FOUR_EYES_MIN_TOTAL!r}") from err
CLAIM_TTL_SECONDS = env.float("CLAIM_TTL_SECONDS", default=900.0)
ESCALATE_AFTER_SECONDS = env.float("ESCALATE_AFTER_SECONDS", default=APPROVAL_TIMEOUT_SECONDS / 2)
WORKFLOW_RUN_TIMEOUT_SECONDS = env.float("WORKFLOW_RUN_TIMEOUT_SECONDS", default=None)
ACTIVITY_TIMEOUT_SECONDS = env.float("ACTIVITY_TIMEOUT_SECONDS", default=2.0)
ACTIVITY_MAX_ATTEMPTS = env.int("ACTIVITY_MAX_ATTEMPTS", default=1000)
FLAKY_CALL_FAILURE_RATE = env.float("FLAKY_CALL_FAILURE_RATE", default=0.0)
FLAKY_CALL_TIMEOUT_SHARE = env.float("FLAKY_CALL_TIMEOUT_SHARE", default=0.0)
# How long an activity retries a transient failure of an outside call itself before failing the
# attempt (and leaving the retry to Temporal). 0: every failure is a Temporal retry.
QUICK_RETRY_BUDGET_SECONDS = env.float("QUICK_RETRY_BUDGET_SECONDS", default=1.0)
# How long an API call waits for the workflow to accept or refuse an action.
TEMPORAL_UPDATE_TIMEOUT_SECONDS = env.float("TEMPORAL_UPDATE_TIMEOUT_SECONDS", default=30.0)
WORKER_GRACE_SECONDS = env.float("WORKER_GRACE_SECONDS", default=10.0)
WORKER_ACTIVITY_THREADS = env.int("WORKER_ACTIVITY_THREADS", default=20)
WORKER_MAX_CACHED_WORKFLOWS = env.int("WORKER_MAX_CACHED_WORKFLOWS", default=1000)
WORKFLOW_SANDBOX = env.bool("WORKFLOW_SANDBOX", default=True)
# runworker serves the Temporal SDK's and the app's Prometheus metrics on this port (unset: none).
WORKER_METRICS_PORT = env.int("WORKER_METRICS_PORT", default=None)
WORKER_METRICS_BIND = env.str("WORKER_METRICS_BIND", default="127.0.0.1")

# Connecting to any Temporal (lifecycle/connect.py): address and namespace above; TLS, an API key
# or a TOML profile through temporalio.envconfig, under the variable names it reads.
TEMPORAL_CLIENT_ENV = {
    name: value
    for name, value in {
        "TEMPORAL_API_KEY": env.str("TEMPORAL_API_KEY", default=""),
        "TEMPORAL_TLS": env.str("TEMPORAL_TLS", default=""),
        "TEMPORAL_TLS_CLIENT_CERT_PATH": env.str("TEMPORAL_TLS_CLIENT_CERT_PATH", default=""),
        "TEMPORAL_TLS_CLIENT_CERT_DATA": env.str("TEMPORAL_TLS_CLIENT_CERT_DATA", default=""),
        "TEMPORAL_TLS_CLIENT_KEY_PATH": env.str("TEMPORAL_TLS_CLIENT_KEY_PATH", default=""),
        "TEMPORAL_TLS_CLIENT_KEY_DATA": env.str("TEMPORAL_TLS_CLIENT_KEY_DATA", default=""),
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": env.str("TEMPORAL_TLS_SERVER_CA_CERT_PATH", default=""),
        "TEMPORAL_TLS_SERVER_CA_CERT_DATA": env.str("TEMPORAL_TLS_SERVER_CA_CERT_DATA", default=""),
        "TEMPORAL_TLS_SERVER_NAME": env.str("TEMPORAL_TLS_SERVER_NAME", default=""),
        "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION": env.str("TEMPORAL_TLS_DISABLE_HOST_VERIFICATION", default=""),
        "TEMPORAL_CONFIG_FILE": env.str("TEMPORAL_CONFIG_FILE", default=""),
        "TEMPORAL_PROFILE": env.str("TEMPORAL_PROFILE", default=""),
    }.items()
    if value
}
# Encrypted payloads (lifecycle/codec.py): the key new payloads are encrypted with, and older keys
# kept to read what they encrypted. A bad value stops every process at startup, in one line.
try:
    PAYLOAD_ENCRYPTION_KEY = (
        parse_key(key, "PAYLOAD_ENCRYPTION_KEY") if (key := env.str("PAYLOAD_ENCRYPTION_KEY", default="")) else None
    )
    PAYLOAD_DECRYPTION_KEYS = [
        parse_key(old, "PAYLOAD_DECRYPTION_KEYS") for old in env.list("PAYLOAD_DECRYPTION_KEYS", default=[]) if old
    ]
except BadKey as err:
    raise SystemExit(f"error: {err}") from None
# Origins whose pages may call the codec endpoint with the user's cookies: the Temporal UI.
CODEC_CORS_ORIGINS = env.list("CODEC_CORS_ORIGINS", default=[TEMPORAL_UI_URL.rstrip("/")])
# Tracing (lifecycle/tracing.py): OTLP over HTTP to this collector (http://host:4318); unset: off.
OTEL_EXPORTER_OTLP_ENDPOINT = env.str("OTEL_EXPORTER_OTLP_ENDPOINT", default="")

# --- Email (escalations to the Supervisors): the console backend unless EMAIL_URL says otherwise
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))

# --- Security headers (production values apply whenever DEBUG is off) -----------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
BEHIND_TLS_PROXY = env.bool("BEHIND_TLS_PROXY", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"  # Django's default, stated: the tests check the header
# Sent with every response by orders.middleware.ContentSecurityPolicyMiddleware. The console, the
# login page, admin and the Swagger UI at /docs load scripts and styles only from their own static
# files (no inline <script> or style=""), so nothing needs 'unsafe-inline'; the console's live
# updates use a websocket (ws: / wss:).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
)

# --- Login throttling (django-axes) ---------------------------------------------------------
# Failed sign-ins (console login page and admin alike) are counted per username *and* client IP:
# after AXES_FAILURE_LIMIT of them that pair is refused, right password or not, for the cool-off
# time (HTTP 429 and templates/registration/locked.html). Counting per pair means an attacker
# cannot lock a colleague out from elsewhere; a success resets the count.
AUTHENTICATION_BACKENDS = [
    # First, so it refuses a locked-out attempt before any password is checked. It needs the
    # request: Django's test Client.login() passes none, so tests use force_login(), or
    # client.login(request=HttpRequest(), ...).
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked.html"
AXES_HTTP_RESPONSE_CODE = 429  # axes' default, stated: Too Many Requests
# The client's address: behind a TLS proxy, from its X-Forwarded-For (orders_site/proxy.py), so
# that nobody locks a reviewer out for everyone behind the proxy.
AXES_CLIENT_IP_CALLABLE = "orders_site.proxy.client_ip"

# --- Logging: plain lines for people, LOG_FORMAT=json for log pipelines -----------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    # Lines logged in an activity or a workflow carry the order's id as `order_id` (orders_site/logs.py).
    "filters": {"order_id": {"()": "orders_site.logs.OrderIdFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["order_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Kept quiet whatever LOG_LEVEL says: django.db.backends would log every query with its
        # parameters, and the Temporal SDK's DEBUG lines print activity results and payloads; both
        # carry payment ids (orders/tests/security/test_logs.py checks that none reaches the logs).
        "django.db.backends": {"level": "WARNING"},
        "temporalio": {"level": "INFO"},
        # Django's own lines go through the handler above only: without this, DEBUG adds Django's
        # default console handler and every line of `django` appears twice (once not as JSON).
        "django": {"handlers": []},
        # A refused request (4xx: 400, 401, 404, 409 ...) is an answer, not a fault, and the web
        # server's access log already has a line for it; 5xx and uncaught exceptions stay logged.
        "django.request": {"level": "ERROR"},
    },
}
# Applies LOGGING, then drops the web server's access lines for static files (orders_site/logs.py).
LOGGING_CONFIG = "orders_site.logs.configure"

# An activity that keeps failing is logged at ERROR (with the order id) from this attempt on.
ACTIVITY_ERROR_LOG_ATTEMPT = env.int("ACTIVITY_ERROR_LOG_ATTEMPT", default=10)

# Test-only fault injection (chaos runs): the share of payment charges after which the worker
# process dies before it can record the charge or report back. Never set it in production.
CHAOS_CRASH_AFTER_CHARGE_RATE = env.float("CHAOS_CRASH_AFTER_CHARGE_RATE", default=0.0)
