"""The CLI: one error boundary (one-line errors, exit codes), list/wit output, deploy against a registry directory,
and a --help that loads only what it needs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from support import text_component, write_wasm

from airssys_web.cli import WIT_PATH, Commands, cli
from airssys_web.errors import AirssysError, GuestTrap, NotFound


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_wit_prints_the_contract(runner: CliRunner) -> None:
    out = runner.invoke(cli, ["wit"])
    assert out.exit_code == 0
    assert "package airssys:web@0.1.1;" in out.output and "handle: func(req: request) -> response;" in out.output
    assert "world middleware {" in out.output and "world route {" in out.output
    path = runner.invoke(cli, ["wit", "--path"]).output.strip()
    assert Path(path) == WIT_PATH and Path(path).read_text() == out.output


def test_deploy_then_list(runner: CliRunner, tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    wasm = write_wasm(tmp_path, "h.wasm", text_component("one"))
    r = runner.invoke(cli, ["deploy", "hello", str(wasm), "--route", "/hello", "--version", "1.0.0",
                            "--registry", str(reg)])
    assert r.exit_code == 0, r.output
    assert "deployed hello@1.0.0 at /hello" in r.output
    wasm2 = write_wasm(tmp_path, "h2.wasm", text_component("two"))
    r = runner.invoke(cli, ["deploy", "hello", str(wasm2), "--route", "/hello", "--version", "1.1.0",
                            "--registry", str(reg), "--config", "greeting=hi", "--timeout", "2", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["deployment"]["active_version"] == "1.1.0"
    listed = json.loads(runner.invoke(cli, ["list", "--registry", str(reg), "--json"]).output)
    assert [(row["component"], row["route"], row["active_version"], [v["version"] for v in row["versions"]])
            for row in listed] == [("hello", "/hello", "1.1.0", ["1.0.0", "1.1.0"])]
    assert listed[0]["deployment"]["settings"] == {"config": {"greeting": "hi"}, "limits": {"timeout": 2.0}}
    table = runner.invoke(cli, ["list", "--registry", str(reg)]).output
    assert "hello" in table and "/hello" in table and "1.1.0" in table


@pytest.mark.parametrize("strategy", ["immediate", "blue-green"])
def test_route_is_needed_on_the_first_deploy_only(runner: CliRunner, tmp_path: Path, strategy: str) -> None:
    reg = ["--strategy", strategy, "--registry", str(tmp_path / "reg")]
    v1 = write_wasm(tmp_path, "v1.wasm", text_component("one"))
    v2 = write_wasm(tmp_path, "v2.wasm", text_component("two"))
    r = runner.invoke(cli, ["deploy", "hello", str(v1), "--version", "1.0.0", *reg])
    assert (r.exit_code, r.stderr) == (2, "error: component 'hello' is new: give it a route, e.g. --route /hello\n")
    assert runner.invoke(cli, ["list", *reg[2:]]).output == "no components deployed\n"
    assert runner.invoke(cli, ["deploy", "hello", str(v1), "--route", "/hello", "--version", "1.0.0",
                               *reg]).exit_code == 0
    r = runner.invoke(cli, ["deploy", "hello", str(v2), "--version", "1.1.0", *reg])
    assert r.exit_code == 0, r.output
    assert "deployed hello@1.1.0 at /hello" in r.stdout  # the route it has


@pytest.mark.parametrize(("args", "message"), [
    (["--version", "1.0"], "invalid version"),
    (["--route", "nope"], "route"),
    (["--route", "/_airssys"], "invalid route '/_airssys': /_airssys and everything below it is reserved"),
    (["--route", "/_airssys/api/x"], "is reserved for airssys-web itself (the admin API); choose another prefix"),
    (["--config", "novalue"], "KEY=VALUE"),
    (["--timeout", "-1"], "timeout"),
])
def test_bad_options_exit_2_with_one_line(runner: CliRunner, tmp_path: Path, args: list[str], message: str) -> None:
    wasm = write_wasm(tmp_path, "h.wasm", text_component("x"))
    base = {"--route": "/x", "--version": "1.0.0"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = ["deploy", "x", str(wasm), "--registry", str(tmp_path / "reg")]
    for flag, value in base.items():
        argv += [flag, value]
    r = runner.invoke(cli, argv)
    assert r.exit_code == 2
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.output


@pytest.mark.parametrize("guest", ["core_module", "wrong_world", "unknown_import"])
def test_bad_component_exit_2(runner: CliRunner, tmp_path: Path, wat_guest: Callable[[str], bytes],
                              guest: str) -> None:
    reg = tmp_path / "reg"
    good = write_wasm(tmp_path, "good.wasm", text_component("good"))
    assert runner.invoke(cli, ["deploy", "c", str(good), "--route", "/c", "--version", "1.0.0",
                               "--registry", str(reg)]).exit_code == 0
    bad = write_wasm(tmp_path, "bad.wasm", wat_guest(guest))
    r = runner.invoke(cli, ["deploy", "c", str(bad), "--route", "/c", "--version", "2.0.0", "--registry", str(reg)])
    assert r.exit_code == 2 and r.output.startswith("error: ")
    listed = json.loads(runner.invoke(cli, ["list", "--registry", str(reg), "--json"]).output)
    assert listed[0]["active_version"] == "1.0.0" and [v["version"] for v in listed[0]["versions"]] == ["1.0.0"]


def test_missing_file_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    r = runner.invoke(cli, ["deploy", "c", str(tmp_path / "missing.wasm"), "--route", "/c", "--version", "1.0.0",
                            "--registry", str(tmp_path / "reg")])
    assert r.exit_code == 2 and "file not found" in r.output


@pytest.mark.parametrize(("file", "hint"), [
    ("notes.txt", "give the .wasm file `airssys-web build` writes"),
    ("hello.wat", "build it first (airssys-web build {path}) and give the .wasm"),
])
def test_a_file_that_is_not_wasm_is_named(runner: CliRunner, tmp_path: Path, file: str, hint: str) -> None:
    path = tmp_path / file
    path.write_text("(component)\n")
    for command in (["deploy", "c", str(path), "--route", "/c"], ["update", "c", str(path)]):
        r = runner.invoke(cli, [*command, "--version", "1.0.0", "--registry", str(tmp_path / "reg")])
        assert r.exit_code == 2
        assert r.stderr == (f"error: {path} is not a WebAssembly file (it does not start with \\0asm); "
                            f"{hint.format(path=path)}\n")
    assert runner.invoke(cli, ["list", "--registry", str(tmp_path / "reg")]).output == "no components deployed\n"


def test_list_empty(runner: CliRunner, tmp_path: Path) -> None:
    r = runner.invoke(cli, ["list", "--registry", str(tmp_path / "reg")])
    assert r.exit_code == 0 and "no components deployed" in r.output


def test_built_component_is_readable_by_others(runner: CliRunner, tmp_path: Path) -> None:
    from airssys_web.guest.build import wat_response_component

    source = tmp_path / "hi.wat"
    source.write_text(wat_response_component("hi"))
    out = tmp_path / "out" / "hi.wasm"
    out.parent.mkdir()
    r = runner.invoke(cli, ["build", str(source), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert out.stat().st_mode & 0o777 == 0o644


# -- the one error boundary ---------------------------------------------------------------------------------------
def _group_raising(error: BaseException) -> click.Group:
    @click.group(cls=Commands)
    def group() -> None:
        pass

    @group.command()
    def act() -> None:
        raise error

    return group


@pytest.mark.parametrize(("error", "code", "last_line"), [
    (NotFound("no component named 'x'; deploy it first"), 2, "error: no component named 'x'; deploy it first"),
    (AirssysError("give either --registry or --server, not both"), 2,
     "error: give either --registry or --server, not both"),
    (GuestTrap("hello@1.0.0 trapped: unreachable"), 1, "error: the component failed: hello@1.0.0 trapped: unreachable"),
    (RuntimeError("boom"), 1, "error: unexpected RuntimeError: boom (a bug in airssys-web; please report it with the "
                              "traceback above)"),
])
def test_every_error_meets_one_boundary(runner: CliRunner, error: Exception, code: int, last_line: str) -> None:
    r = runner.invoke(_group_raising(error), ["act"])
    assert r.exit_code == code and r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines[-1] == last_line
    if isinstance(error, AirssysError):
        assert len(lines) == 1  # a refusal is one line, never a traceback
    else:
        assert lines[0] == "Traceback (most recent call last):"


def test_click_keeps_its_own_usage_errors(runner: CliRunner) -> None:
    r = runner.invoke(cli, ["deploy", "hello"])
    assert r.exit_code == 2 and "Usage: " in r.stderr and "Missing argument 'FILE'" in r.stderr


# -- a fast --help ----------------------------------------------------------------------------------------------------
#: What --help must not load: the web stack, the HTTP client, the runtime and its Rust extension, the terminal UI.
HEAVY = ("starlette", "httpx", "uvicorn", "rich", "wasmtime", "watchfiles", "airssys_web._native",
         "airssys_web.runtime.engine", "airssys_web.lifecycle.registry", "airssys_web.capabilities")


@pytest.mark.parametrize("args", [["--help"], ["deploy", "--help"], ["update", "--help"], ["serve", "--help"],
                                  ["list", "--help"], ["call", "--help"], ["dev", "--help"]])
def test_help_imports_only_what_it_needs(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "airssys_web.cli", *args], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("Usage: "), done.stderr[-2000:]
    imported = [line.rpartition("|")[2].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:") and "|" in line]
    assert "airssys_web.cli" in imported  # the probe sees our imports
    heavy = sorted(m for m in imported if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert heavy == [], f"airssys-web {' '.join(args)} imports {heavy}"
