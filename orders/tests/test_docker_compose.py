"""Static checks of docker-compose.yml and the Dockerfile: no Docker engine and no database needed.

The compose stack cannot be started in CI, so these tests catch the mistakes that would only show
up at `docker compose up`: a renamed management command or option, a moved ASGI application, a
missing file that a volume or build context points at, a dependency on a service that is gone.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from django.core.management import get_commands, load_command_class

from lifecycle.worker import QUEUES

PROJECT_DIR = Path(__file__).resolve().parents[2]
COMPOSE_FILE = PROJECT_DIR / "docker-compose.yml"
DOCKERFILE = PROJECT_DIR / "Dockerfile"

INFRA_SERVICES = ("postgresql", "temporal", "temporal-ui")
TEMPORAL_JOBS = ("temporal-schema", "temporal-namespace", "temporal-search-attributes")
APP_SERVICES = ("migrate", "order-worker", "shipping-worker", "web")
LONG_RUNNING_APP_SERVICES = ("order-worker", "shipping-worker", "web")


def _compose() -> dict[str, Any]:
    with COMPOSE_FILE.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    """The service's dependencies as {name: condition}, for both the list and the mapping form."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, args = line.strip().partition(" ")
            found.append((instruction.upper(), args.strip()))
    return found


def _exec_form(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def _dockerfile_cmd() -> list[str]:
    cmds = [args for instruction, args in _dockerfile_instructions() if instruction == "CMD"]
    assert cmds, "the Dockerfile has no CMD"
    return _exec_form(cmds[-1])  # Docker uses the last CMD


def test_compose_defines_the_full_stack() -> None:
    assert set(INFRA_SERVICES + TEMPORAL_JOBS + APP_SERVICES) <= set(_services())


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_app_service_runs_the_image_built_from_the_dockerfile(name: str) -> None:
    services = _services()
    service = services[name]
    image = service.get("image")
    assert image, f"{name} has no image"
    builders = [s for s in services.values() if s.get("image") == image and "build" in s]
    assert builders, f"no service builds {image!r}"
    for builder in builders:
        build = builder["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        assert (PROJECT_DIR / context / dockerfile).resolve() == DOCKERFILE


@pytest.mark.parametrize("name", APP_SERVICES)
def test_every_app_service_gets_the_shared_environment(name: str) -> None:
    env = _services()[name]["environment"]
    for key in ("DATABASE_URL", "TEMPORAL_ADDRESS", "SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "TEMPORAL_UI_URL"):
        assert key in env, f"{name} lacks {key}"
    assert str(env["DEBUG"]) in {"0", "False", "false"}


def _manage_py_commands() -> list[tuple[str, list[str]]]:
    found = []
    for name, service in _services().items():
        argv = _argv(service.get("command") or [])
        if argv[:2] == ["python", "manage.py"]:
            found.append((name, argv[2:]))
    return found


def test_every_manage_py_command_in_compose_exists() -> None:
    commands = get_commands()
    found = _manage_py_commands()
    assert found, "no service runs manage.py"
    for service, args in found:
        assert args and args[0] in commands, f"{service}: unknown management command {args[:1]}"


@pytest.mark.parametrize("service, args", _manage_py_commands())
def test_every_manage_py_command_in_compose_accepts_its_options(service: str, args: list[str]) -> None:
    name, options = args[0], args[1:]
    command = load_command_class(get_commands()[name], name)
    # Raises CommandError for an unknown option or a bad choice.
    command.create_parser("manage.py", name).parse_args(options)


def test_runworker_comes_from_the_lifecycle_app_not_channels() -> None:
    assert get_commands()["runworker"] == "lifecycle"


def test_the_worker_services_cover_every_task_queue() -> None:
    queues: set[str] = set()
    for service, args in _manage_py_commands():
        if args[0] == "runworker":
            options = (
                load_command_class("lifecycle", "runworker")
                .create_parser("manage.py", "runworker")
                .parse_args(args[1:])
            )
            assert options.queue, f"{service} runs every queue; the compose file gives each queue its own service"
            queues.update(options.queue)
    assert queues == set(QUEUES)


def test_every_uvicorn_command_in_compose_points_at_an_importable_application() -> None:
    found = [
        (name, _argv(service["command"]))
        for name, service in _services().items()
        if _argv(service.get("command") or [])[:1] == ["uvicorn"]
    ]
    assert found, "no service runs uvicorn"
    for service, argv in found:
        target = next(arg for arg in argv[1:] if not arg.startswith("-"))
        module_name, _, attr = target.partition(":")
        module = importlib.import_module(module_name)
        assert callable(getattr(module, attr, None)), f"{service}: {target} is not an ASGI application"


def test_the_dockerfile_cmd_is_the_web_command() -> None:
    assert _dockerfile_cmd() == _argv(_services()["web"]["command"])


def test_the_dockerfile_runs_as_a_non_root_user_and_collects_static_files() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    users = re.findall(r"^\s*USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    assert "collectstatic --noinput" in text
    assert re.search(r"^\s*ENV\b.*DJANGO_SETTINGS_MODULE=orders_site\.settings", text, flags=re.MULTILINE | re.DOTALL)


def test_files_mounted_from_the_project_exist() -> None:
    for name, service in _services().items():
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/")):
                assert (PROJECT_DIR / source).exists(), f"{name} mounts missing {source}"


def test_the_app_connects_as_its_own_role_that_owns_its_database() -> None:
    services = _services()
    database_url = urlsplit(services["web"]["environment"]["DATABASE_URL"])
    assert database_url.hostname == "postgresql"
    app_db, app_role = database_url.path.lstrip("/"), database_url.username
    superuser = services["postgresql"]["environment"]["POSTGRES_USER"]
    assert app_role and app_role != superuser
    init_sql = (PROJECT_DIR / "docker" / "postgres-init.sql").read_text(encoding="utf-8")
    assert re.search(rf"CREATE ROLE {re.escape(app_role)} LOGIN\b", init_sql, flags=re.IGNORECASE)
    assert not re.search(r"(?<!NO)SUPERUSER", init_sql), "the app's role must not be a superuser"
    owner = rf"CREATE DATABASE {re.escape(app_db)} OWNER {re.escape(app_role)}\b"
    assert re.search(owner, init_sql, flags=re.IGNORECASE)
    mounts = [v for v in services["postgresql"]["volumes"] if isinstance(v, str)]
    assert any(m.startswith("./docker/postgres-init.sql:/docker-entrypoint-initdb.d/") for m in mounts)


def test_temporal_runs_from_the_server_and_admin_tools_images_of_one_version() -> None:
    services = _services()
    images = [str(service.get("image", "")) for service in services.values()]
    assert not [image for image in images if "auto-setup" in image], "temporalio/auto-setup is deprecated"
    server = services["temporal"]["image"]
    assert server.startswith("temporalio/server:")
    version = server.partition(":")[2]
    for job in TEMPORAL_JOBS:
        assert services[job]["image"] == f"temporalio/admin-tools:{version}"
        assert services[job]["restart"] != "unless-stopped", f"{job} is a one-shot job"
    config = services["temporal"]["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    mounts = [v.split(":")[1] for v in services["temporal"]["volumes"]]
    assert f"/etc/temporal/{config}" in mounts


def _job_script(name: str) -> str:
    """The shell the job runs: its inline command, or the mounted script it names."""
    service = _services()[name]
    text = " ".join(_argv(service.get("command") or []))
    for volume in service.get("volumes") or []:
        source, target = volume.split(":")[:2]
        if target in text:
            text += "\n" + (PROJECT_DIR / source).read_text(encoding="utf-8")
    return text


def test_the_schema_job_sets_up_both_temporal_stores_before_the_server_starts() -> None:
    script = _job_script("temporal-schema")
    for step in ("create-database", "setup-schema -v 0.0", "update-schema -d"):
        assert f'"$database" {step}' in script
    assert "temporal:temporal" in script and "temporal_visibility:visibility" in script
    assert "--plugin postgres12" in script
    assert _depends_on(_services()["temporal"]) == {"temporal-schema": "service_completed_successfully"}


def test_the_jobs_create_the_namespace_and_register_every_search_attribute() -> None:
    from scripts.stack.temporal import SEARCH_ATTRIBUTES

    namespace = _services()["web"]["environment"]["TEMPORAL_NAMESPACE"]
    assert f"temporal operator namespace create --namespace {namespace}" in _job_script("temporal-namespace")
    script = _job_script("temporal-search-attributes")
    for name, kind in SEARCH_ATTRIBUTES.items():
        assert f"search-attribute create --namespace {namespace} --name {name} --type {kind}" in script
    assert _depends_on(_services()["temporal-search-attributes"]) == {
        "temporal-namespace": "service_completed_successfully"
    }


def test_the_app_talks_to_the_temporal_service_in_the_stack() -> None:
    services = _services()
    host, _, port = services["web"]["environment"]["TEMPORAL_ADDRESS"].partition(":")
    assert host == "temporal"
    assert any(str(p).split(":")[-1] == port for p in services["temporal"]["ports"])


def test_every_dependency_exists_and_health_conditions_have_a_healthcheck() -> None:
    services = _services()
    for name, service in services.items():
        for dep, condition in _depends_on(service).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], (
                    f"{name} waits for {dep} to be healthy, but it has no healthcheck"
                )


@pytest.mark.parametrize("name", LONG_RUNNING_APP_SERVICES)
def test_app_processes_start_after_migrations_and_a_healthy_temporal(name: str) -> None:
    deps = _depends_on(_services()[name])
    assert deps.get("migrate") == "service_completed_successfully"
    assert deps.get("temporal") == "service_healthy"
    assert deps.get("temporal-search-attributes") == "service_completed_successfully"


def test_the_web_service_is_healthy_when_ready_and_the_image_when_live() -> None:
    web = _services()["web"]["healthcheck"]
    assert "http://127.0.0.1:8000/health/ready" in " ".join(web["test"])
    healthchecks = [args for instruction, args in _dockerfile_instructions() if instruction == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "http://127.0.0.1:8000/health/live" in healthchecks[0]
    assert "127.0.0.1" in _services()["web"]["environment"]["ALLOWED_HOSTS"].split(",")


def test_the_image_is_multi_stage_and_installs_only_the_hash_locked_runtime() -> None:
    instructions = _dockerfile_instructions()
    stages = [args for instruction, args in instructions if instruction == "FROM"]
    assert len(stages) == 2 and stages[-1] == "python:3.11-slim"
    installs = [args for instruction, args in instructions if instruction == "RUN" and "pip install" in args]
    assert installs and all("--require-hashes -r /tmp/runtime.txt" in args for args in installs)
    copies = [args for instruction, args in instructions if instruction == "COPY"]
    assert "requirements/runtime.txt /tmp/runtime.txt" in copies
    assert "--from=builder /opt/venv /opt/venv" in copies
    assert "dev.txt" not in DOCKERFILE.read_text(encoding="utf-8")


def test_migrate_runs_once_after_postgres_is_healthy() -> None:
    migrate = _services()["migrate"]
    assert str(migrate.get("restart")) == "no"
    assert _depends_on(migrate).get("postgresql") == "service_healthy"
