"""The install is reproducible: requirements/lock.txt pins, with hashes, every package the
development install asks for (pyproject.toml's dependencies and its extras world and test)."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    """A requirement's distribution name, normalised (PEP 503)."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement.strip()).group(0)
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, tuple[str, int]]:
    """Each package of the lock: (its pinned version, how many hashes it has)."""
    text = (ROOT / "requirements" / "lock.txt").read_text()
    found = {}
    for block in re.split(r"\n(?=[a-z0-9])", text):
        pin = re.match(r"([a-z0-9._-]+)==(\S+)", block)
        if pin:
            found[_name(pin.group(1))] = (pin.group(2), block.count("--hash=sha256:"))
    return found


def test_every_dependency_of_the_development_install_is_pinned_with_hashes():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = [*project["dependencies"], *extras["world"], *extras["test"]]
    wanted = [r for r in wanted if not r.startswith("sashie[")]
    wanted += [r for extra in ("plot", "export", "ray") for r in extras[extra]]  # via test
    pins = locked()
    missing = sorted({_name(r) for r in wanted} - set(pins))
    assert not missing, f"not in requirements/lock.txt (run scripts/lock): {missing}"
    assert all(hashes for _, hashes in pins.values()), "every pin carries its hashes"
    assert pins["torch"][0] == "2.13.0+cpu"  # the CPU build, not a CUDA one of several GB


def test_the_lock_pins_what_the_project_requires():
    """A version outside pyproject.toml's range would test something users cannot get."""
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = locked()
    for text in project["dependencies"]:
        requirement = Requirement(text)
        version = pins[_name(requirement.name)][0]
        assert requirement.specifier.contains(version, prereleases=True), (text, version)
