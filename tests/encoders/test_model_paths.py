"""Where a model is: a relative directory is stored resolved, a missing or empty one is one
line, and an uncached hub id without a network fails at once instead of retrying."""

import json
import os
import shutil
import time

import pytest

from conftest import run_cli, start_cli_process


def test_a_relative_model_directory_works_from_any_directory(
    tmp_path, tiny_clip, pages, monkeypatch
):
    shutil.copytree(tiny_clip, tmp_path / "my-clip")
    monkeypatch.chdir(tmp_path)
    run_cli("index", "L", pages, "--model", "hf:./my-clip", "--regions", "whole", "-q")
    spec = json.loads((tmp_path / "L" / "manifest.json").read_text())["models"]
    assert [m["spec"] for m in spec.values()] == [f"hf:{tmp_path / 'my-clip'}"]
    # the spec as typed still names the library's model here
    assert run_cli("search", "L", "a crane", "--model", "hf:./my-clip", "--json").exit_code == 0
    monkeypatch.chdir("/")
    hits = json.loads(run_cli("search", tmp_path / "L", "a crane", "--json").stdout)["results"]
    assert len(hits) == 12  # every page


def test_a_missing_or_empty_model_directory_is_one_line(tmp_path, pages, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    for given, folder in (("./nothing-here", "nothing-here"), (str(tmp_path / "empty"), "empty")):
        done = run_cli("index", "L", pages, "--model", f"hf:{given}", "-q", check=False)
        assert done.exit_code == 1
        assert done.stderr == f"error: no model at {tmp_path / folder}\n"
        assert not (tmp_path / "L").exists()  # and no empty library is left behind


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """For the processes started: no network to the hub (its endpoint a name that never
    resolves, RFC 2606), a model cache in tmp_path, no proxy, HF_HUB_OFFLINE not set."""
    for name in [k for k in os.environ if "proxy" in k.lower()] + ["HF_HUB_OFFLINE"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


@pytest.mark.slow
def test_an_uncached_hub_model_without_a_network_fails_at_once(tmp_path, pages, offline):
    started = time.monotonic()
    process = start_cli_process(
        "index", tmp_path / "L", pages, "--model", "hf:nobody/no-such-clip", "-q"
    )
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert stderr == (
        "error: cannot load model hf:nobody/no-such-clip: it is not in the local Hugging Face "
        "cache and hub.invalid cannot be reached (offline)\n"
    )
    assert time.monotonic() - started < 25  # with the process's start; not after 30 s of retries
    assert not (tmp_path / "L").exists()


@pytest.mark.slow
def test_a_cached_hub_model_loads_without_a_network(tmp_path, tiny_clip, pages, offline):
    """A model in the Hugging Face cache (as a download leaves it) loads offline."""
    repo = tmp_path / "hf" / "hub" / "models--someone--tiny-clip"
    commit = "0" * 40
    shutil.copytree(tiny_clip, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    process = start_cli_process(
        "index", tmp_path / "L", pages, "--model", "hf:someone/tiny-clip", "--regions", "whole",
        "-q", "--json",
    )  # fmt: skip
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert json.loads(stdout)["vectors_added"] == 12
