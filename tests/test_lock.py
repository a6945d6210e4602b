"""The lock (requirements-lock.txt) and what it is compiled from agree, and the environment is the lock.

The requirements files and the client's pyproject.toml keep ranges (what a user of the packages needs);
the lock pins every package, transitive ones included, at one exact version, and `make install` syncs
the virtualenv to it. These checks read files and the installed distributions only: no registry.
"""
from __future__ import annotations

import re
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from devtools.servers import ROOT

LOCK = ROOT / "requirements-lock.txt"


def locked() -> dict[str, str]:
    """The lock's pins that apply to this interpreter and platform: name -> version."""
    pins: dict[str, str] = {}
    env = default_environment()
    for line in LOCK.read_text().splitlines():
        if not line or line[0] in "# -":
            continue
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate(env):
            continue
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"the lock pins exactly: {line}"
        pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def direct_requirements(path: Path, seen: set[Path] | None = None) -> list[tuple[Path, Requirement]]:
    """Each requirement of a requirements file, following ``-r`` includes."""
    seen = seen if seen is not None else set()
    if path in seen:
        return []
    seen.add(path)
    found: list[tuple[Path, Requirement]] = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-r "):
            found += direct_requirements(path.parent / line[3:].strip(), seen)
            continue
        found.append((path, Requirement(line)))
    return found


def client_requirements() -> list[tuple[Path, Requirement]]:
    path = ROOT / "client" / "pyproject.toml"
    project = tomllib.loads(path.read_text())["project"]
    return [(path, Requirement(text)) for text in project["dependencies"]]


def lock_inputs() -> list[str]:
    """The files the Makefile's `make lock` compiles the lock from."""
    match = re.search(r"^REQUIREMENTS := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert match, "the Makefile names REQUIREMENTS, the lock's inputs"
    return match.group(1).split()


def test_every_requirement_is_locked_at_a_version_it_allows() -> None:
    pins = locked()
    requirements = client_requirements()
    for name in lock_inputs():
        if name.endswith(".txt"):
            requirements += direct_requirements(ROOT / name)
    assert len(requirements) > 30
    env = default_environment()
    for path, requirement in requirements:
        if requirement.marker is not None and not requirement.marker.evaluate(env):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{path.name}: {requirement} is not in {LOCK.name}: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{path.name} asks for {requirement}, {LOCK.name} pins {name}=={pins[name]}: run `make lock`")


def test_the_lock_was_compiled_from_the_files_make_lock_names() -> None:
    header = LOCK.read_text().splitlines()[1]
    assert header.startswith("#    uv pip compile "), header
    for name in lock_inputs():
        assert f" {name} " in header, f"{LOCK.name} was not compiled from {name}: run `make lock`"
    assert "--universal" in header  # one lock for Linux and the laptops (macOS): markers, not a platform


def test_the_environment_is_the_lock() -> None:
    pins = locked()
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    wrong = {name: (version, installed.get(name)) for name, version in pins.items()
             if installed.get(name) != version}
    assert not wrong, f"installed packages differ from {LOCK.name} (locked, installed): {wrong}; run `make install`"
    extra = set(installed) - set(pins) - {"c3render-client"}
    assert not extra, f"installed but not locked: {sorted(extra)}"


def test_the_installer_and_the_images_use_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    uv = re.search(r"^UV_VERSION := (\S+)$", makefile, re.M)
    assert uv and locked()["uv"] == uv.group(1), "the Makefile installs the uv version the lock pins"
    assert "pip sync" in makefile and "$(LOCK)" in makefile
    dockerfile = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"pip install [^\n]*-r (\S+)[^\n]*", dockerfile)
    assert installs, "the Dockerfile installs requirements files"
    for line in re.findall(r"pip install [^\n]*", dockerfile):
        assert "-c requirements-lock.txt" in line, f"the Dockerfile installs without the lock: {line}"


def test_the_packages_users_install_keep_ranges() -> None:
    for path, requirement in client_requirements():
        assert not any(spec.operator == "==" for spec in requirement.specifier), (
            f"{path}: {requirement} pins; a library keeps compatible ranges")


def test_the_server_requirements_keep_ranges() -> None:
    """requirements.txt (what Chalice bundles) and requirements-worker.txt (the worker's image) are what
    a deployment installs beside its own packages: ranges, with the lock as constraints at install."""
    for name in ("requirements.txt", "requirements-worker.txt"):
        for path, requirement in direct_requirements(ROOT / name):
            assert requirement.specifier and not any(spec.operator == "==" for spec in requirement.specifier), (
                f"{path.name}: {requirement} pins, or has no range")


def test_make_install_says_what_it_does_and_make_lock_is_documented() -> None:
    """make install prints one line per stage (it was silent for minutes); make help lists every target."""
    dry = subprocess.run(["make", "-n", "-B", "install"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    stages = re.findall(r'echo "install \[(\d)/(\d)\]', dry.stdout)
    assert dry.returncode == 0 and [int(n) for n, _ in stages] == list(range(1, len(stages) + 1)), dry.stdout
    assert len(stages) >= 4 and all(int(total) == len(stages) for _, total in stages)
    listed = subprocess.run(["make", "help"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    targets = set(re.findall(r"^\.PHONY: (.*)$", (ROOT / "Makefile").read_text(), re.M)[0].split()) - {"help"}
    shown = set(re.findall(r"^make (\S+)", listed.stdout, re.M))
    assert listed.returncode == 0 and targets <= shown, f"make help leaves out {targets - shown}"
    assert "make lock" in (ROOT / "docs" / "local.md").read_text()
