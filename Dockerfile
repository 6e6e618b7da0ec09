# Image for the Order Lifecycle app: the web server and the Temporal workers use the same image,
# only the command differs (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=orders_site.settings

WORKDIR /app

RUN groupadd --system app \
    && useradd --system --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .

# collectstatic needs settings to load, and settings need a SECRET_KEY: use a throwaway one that
# exists only for this step (it is not kept in the image's environment).
ARG COLLECTSTATIC_SECRET_KEY=collectstatic-only-throwaway-key-not-used-at-runtime
RUN SECRET_KEY="$COLLECTSTATIC_SECRET_KEY" python manage.py collectstatic --noinput \
    && mkdir -p .data \
    && chown -R app:app .data

USER app

EXPOSE 8000

CMD ["uvicorn", "orders_site.asgi:application", "--host", "0.0.0.0", "--port", "8000"]
