# Image for the Order Lifecycle app: the web server and the Temporal workers use the same image,
# only the command differs (see docker-compose.yml). Two stages: the builder installs the runtime
# lock (requirements/runtime.txt, every file checked against its hash) into a virtualenv; the
# final image copies that virtualenv and the app, nothing else: no compiler, no pip cache, none of
# the development tools (Temporal CLI, test server, Playwright, pytest, ruff).

# --- builder: the runtime dependencies, locked and hash-checked --------------------------------
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
COPY requirements/runtime.txt /tmp/runtime.txt
RUN /opt/venv/bin/pip install --require-hashes -r /tmp/runtime.txt

# --- final: the virtualenv, the app, a non-root user ------------------------------------------
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=orders_site.settings

WORKDIR /app

RUN groupadd --system app \
    && useradd --system --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv
COPY . .

# collectstatic needs settings to load, and settings need a SECRET_KEY: use a throwaway one that
# exists only for this step (it is not kept in the image's environment).
ARG COLLECTSTATIC_SECRET_KEY=collectstatic-only-throwaway-key-not-used-at-runtime
RUN SECRET_KEY="$COLLECTSTATIC_SECRET_KEY" python manage.py collectstatic --noinput \
    && mkdir -p .data \
    && chown -R app:app .data

USER app

EXPOSE 8000

# Liveness only (the process answers): a Temporal or database outage must not get a healthy web
# process restarted. Readiness (/health/ready) is for the load balancer and compose's ordering.
# The worker services override it (they serve no HTTP).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2).status != 200)"]

CMD ["uvicorn", "orders_site.asgi:application", "--host", "0.0.0.0", "--port", "8000"]
