"""Rules of the source itself, checked cheaply (no database, no Temporal): each shared name is
written in one place, the people-facing surfaces read orders through `orders/selectors.py`, and
test files stay small enough to read."""

from __future__ import annotations

import ast
import os
from pathlib import Path

from django.apps import apps
from django.contrib.auth import get_permission_codename

from orders import actions, admin, permissions, views

ROOT = Path(__file__).resolve().parents[2]
ORDERS = ROOT / "orders"
# Only the order lookups are forbidden here: the views keep their console-submission records themselves.
READ_THROUGH_SELECTORS = (
    *sorted(path.relative_to(ORDERS).as_posix() for path in (ORDERS / "views").glob("*.py")),
    "api.py",
    "actions.py",
)
MANAGERS = {"objects", "_default_manager", "_base_manager"}
TEST_FILE_MAX_LINES = 500


def app_modules(*packages: Path) -> list[Path]:
    """The app's own Python modules: not its migrations (frozen history) nor its tests."""
    found = []
    for package in packages:
        for path in sorted(package.rglob("*.py")):
            if not {"migrations", "tests"} & set(path.relative_to(package).parts):
                found.append(path)
    return found


def string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def order_permissions() -> set[str]:
    """Every permission Django creates for the orders app: the default four per model and the
    models' own (`Meta.permissions`)."""
    config = apps.get_app_config("orders")
    names = set()
    for model in config.get_models():
        opts = model._meta
        names |= {f"{config.label}.{get_permission_codename(verb, opts)}" for verb in opts.default_permissions}
        names |= {f"{config.label}.{codename}" for codename, _ in opts.permissions}
    return names


def test_permission_names_are_written_out_only_in_permissions_py() -> None:
    names = order_permissions()
    assert {"orders.approve_order", "orders.view_order", "orders.change_apitoken"} <= names
    found = [
        f"{path.relative_to(ROOT)}:{line}: {value!r}"
        for path in app_modules(ORDERS, ROOT / "orders_site")
        if path != ORDERS / "permissions.py"
        for line, value in string_constants(path)
        if value in names
    ]
    assert not found, "import the name from orders/permissions.py instead:\n" + "\n".join(found)


def test_every_permission_that_permissions_py_names_exists() -> None:
    named = {
        value
        for name, value in vars(permissions).items()
        if name.isupper() and isinstance(value, str) and value.startswith("orders.")
    }
    assert named and named <= order_permissions(), named - order_permissions()
    assert set(permissions.ACTION_PERMISSIONS.values()) <= named
    assert set(permissions.API_PERMISSIONS) <= named
    for members in permissions.GROUPS.values():
        assert set(members) <= named


def test_views_the_api_and_actions_read_orders_only_through_selectors() -> None:
    found = []
    for name in READ_THROUGH_SELECTORS:
        path = ORDERS / name
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in MANAGERS
                and isinstance(node.value, ast.Name)
                and node.value.id == "Order"
            ):
                found.append(f"orders/{name}:{node.lineno}: Order.{node.attr}")
    assert not found, "add a selector to orders/selectors.py instead:\n" + "\n".join(found)


def test_bulk_limit_is_defined_once_and_shared_by_the_console_and_admin() -> None:
    defined = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in app_modules(ORDERS)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name) and target.id == "BULK_LIMIT"
    ]
    assert len(defined) == 1 and defined[0].startswith("orders/actions.py:"), defined
    assert views.BULK_LIMIT is actions.BULK_LIMIT and admin.BULK_LIMIT is actions.BULK_LIMIT


def test_no_test_file_is_over_500_lines() -> None:
    """Every module of the test suite in the repository (anything under a `tests` folder, and
    conftest.py files): past this size a file is split by the surface or module it tests."""
    too_long = []
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if not d.startswith(".") and d not in {"node_modules", "__pycache__"}]
        in_tests = "tests" in Path(folder).relative_to(ROOT).parts
        for name in files:
            if name.endswith(".py") and (in_tests or name == "conftest.py"):
                path = Path(folder) / name
                lines = len(path.read_text(encoding="utf-8").splitlines())
                if lines > TEST_FILE_MAX_LINES:
                    too_long.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert not too_long, f"split these (at most {TEST_FILE_MAX_LINES} lines each):\n" + "\n".join(too_long)
