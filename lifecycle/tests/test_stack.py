"""scripts/stack: the environment the app's processes see, children that die with their parent,
and scripts/ kept in functions a reader can hold in their head."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from orders.tests.factories import wait_until
from scripts.stack import REPO_ROOT, StackError, app_environment
from scripts.stack.environment import LEFT_AT_DEFAULT, PASSED_THROUGH, SETTABLE, exported_settings

SETTINGS_FILE = REPO_ROOT / "orders_site" / "settings.py"
SCRIPTS_DIR = REPO_ROOT / "scripts"
MAX_FUNCTION_LINES = 100


def environment_variables_read_by(path: Path) -> set[str]:
    """Every variable name the module reads: `env("X")`, `env.<type>("X", ...)` (str, int, bool,
    float, list, db_url, ...), `os.environ["X"]`, `os.environ.get("X")`, `os.getenv("X")`."""
    names: set[str] = set()
    unreadable: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and _reads_environment(ast.unparse(node.func)):
            target: ast.expr | None = node.args[0] if node.args else None
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            target = node.slice
        else:
            continue
        if isinstance(target, ast.Constant) and isinstance(target.value, str):
            names.add(target.value)
        else:
            unreadable.append(f"line {node.lineno}: {ast.unparse(node)}")
    assert not unreadable, f"settings read under a name this test cannot see: {unreadable}"
    return names


def _reads_environment(called: str) -> bool:
    return called == "env" or called.startswith("env.") or called in ("os.getenv", "os.environ.get")


def test_every_setting_is_set_by_the_stack_or_left_at_its_default() -> None:
    read = environment_variables_read_by(SETTINGS_FILE)
    assert {"DATABASE_URL", "DEBUG", "WORKFLOW_SANDBOX", "DB_POOL_MAX_SIZE"} <= read  # the parser works
    undecided = sorted(read - SETTABLE - LEFT_AT_DEFAULT)
    assert not undecided, (
        f"orders_site/settings.py reads {undecided}: add each to SETTABLE or LEFT_AT_DEFAULT in "
        "scripts/stack/environment.py, so an exported shell variable cannot change what the stack runs"
    )
    assert not SETTABLE & LEFT_AT_DEFAULT
    assert not (SETTABLE | LEFT_AT_DEFAULT) & PASSED_THROUGH


def test_the_app_sees_only_the_allow_list_and_the_stacks_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "WORKFLOW_SANDBOX": "false",
        "DB_POOL_MAX_SIZE": "3",
        "QUICK_RETRY_BUDGET_SECONDS": "0",
        "DEBUG": "1",
        "PYTHONPATH": "/elsewhere",
        "LC_ALL": "C.UTF-8",
    }.items():
        monkeypatch.setenv(name, value)
    env = app_environment({"DATABASE_URL": "sqlite:////tmp/x.sqlite3", "FLAKY_CALL_FAILURE_RATE": 0.5})
    assert env["DATABASE_URL"] == "sqlite:////tmp/x.sqlite3"
    assert env["FLAKY_CALL_FAILURE_RATE"] == "0.5"
    assert env["DJANGO_SETTINGS_MODULE"] == "orders_site.settings"
    assert env["PATH"] and env["LC_ALL"] == "C.UTF-8"
    for dropped in ("WORKFLOW_SANDBOX", "DB_POOL_MAX_SIZE", "QUICK_RETRY_BUDGET_SECONDS", "DEBUG", "PYTHONPATH"):
        assert dropped not in env


def test_a_setting_the_stack_does_not_set_is_refused() -> None:
    with pytest.raises(ValueError, match="WORKFLOW_SANDBOX"):
        app_environment({"WORKFLOW_SANDBOX": False})


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie nobody has reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_dies_with_its_supervisor_even_when_the_supervisor_is_killed() -> None:
    code = (
        "import time; from scripts.stack import Supervisor, base_environment\n"
        "child = Supervisor().start('sleeper', ['sleep', '120'], env=base_environment(), layer=0)\n"
        "print(child.pid, flush=True); time.sleep(120)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    assert not _gone(child_pid)
    parent.kill()
    parent.wait()
    wait_until(lambda: _gone(child_pid), timeout=10, what=f"the child {child_pid} to die with its parent")


def test_a_failed_manage_command_says_what_failed(tmp_path: Path) -> None:
    from scripts.stack import Stack

    with pytest.raises(StackError, match=r"`manage.py nosuchcommand` failed \(exit code 1\)"):
        Stack({"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}).manage("nosuchcommand")


def test_no_function_in_scripts_is_longer_than_a_hundred_lines() -> None:
    long = [
        f"{path.relative_to(REPO_ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in sorted(SCRIPTS_DIR.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"split these (at most {MAX_FUNCTION_LINES} lines each): {long}"


def test_make_run_passes_on_the_app_settings_the_user_exported_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`APPROVAL_TIMEOUT_SECONDS=60 make run` is a choice (devstack names it when it starts); the
    benchmark, the chaos run and the tests build their environment without `exported`."""
    monkeypatch.setenv("APPROVAL_TIMEOUT_SECONDS", "60")
    monkeypatch.setenv("DB_POOL_MAX_SIZE", "3")
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    exported = exported_settings()
    assert exported["APPROVAL_TIMEOUT_SECONDS"] == "60" and exported["DB_POOL_MAX_SIZE"] == "3"
    assert "PYTHONPATH" not in exported
    env = app_environment({"APPROVAL_TIMEOUT_SECONDS": 300, "DEBUG": True}, exported=exported)
    assert (env["APPROVAL_TIMEOUT_SECONDS"], env["DB_POOL_MAX_SIZE"], env["DEBUG"]) == ("60", "3", "true")
    assert "PYTHONPATH" not in env
