"""``airssys-web call FILE.wasm [METHOD] PATH``: one request through a component, no server, printed like curl."""

from __future__ import annotations

import json as jsonlib
import sys
from pathlib import Path
from typing import Any

import click

from .options import capability_options

_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


@click.command("call", context_settings={"show_default": True})
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("request", nargs=-1, required=True, metavar="[METHOD] PATH")
@click.option("-d", "--body", default=None, help="Request body (text); @FILE reads a file, @- reads stdin.")
@click.option("--json", "json_body", default=None, metavar="JSON", help="JSON request body (sets content-type).")
@click.option("-H", "--header", "headers", multiple=True, metavar="'NAME: VALUE'", help="Request header (repeatable).")
@click.option("-i", "--include", is_flag=True, help="Print the status line and headers on stdout too (like curl -i).")
@click.option("--kv-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep --kv data in this directory between calls (default: a temporary store).")
@click.option("--name", default="call", help="Component name the host uses (KV namespace, log tag).")
@click.option("--route", default=None, metavar="/PATH",
              help="Call it as deployed at this route (the host tells the guest its mount point). [default: none]")
@capability_options
def call_cmd(file: Path, request: tuple[str, ...], body: str | None, json_body: str | None, headers: tuple[str, ...],
             include: bool, kv_dir: Path | None, name: str, route: str | None, **options: Any) -> None:
    """Run one request through FILE.wasm in-process and print the response (body on stdout).

    Grants and limits work as for deploy (the airssys.toml next to FILE is read too), e.g.
    `airssys-web call api.wasm POST /items --json '{"name": "x"}' --kv`.
    """
    from ...capabilities.kv import SqliteKVStore
    from ...guest.testing import ComponentClient
    from .options import CapabilityOptions

    method, path = _split_request(request)
    opts = CapabilityOptions.pop_from(options)
    content = _body(body, json_body)
    sent = _headers(headers) + ([("content-type", "application/json")] if json_body is not None else [])
    store = SqliteKVStore(kv_dir / "kv.db") if kv_dir is not None else None
    try:  # a guest failure (GuestError) is "the component failed", exit code 1, at the CLI's error boundary
        with ComponentClient(file, grants=opts.grants, limits=opts.limits, name=name, route=route,
                             manifest=opts.manifest if opts.manifest is not None else None,
                             kv_store=store) as client:
            response = client.request(method, path, content=content, headers=sent)
    finally:
        if store is not None:
            store.close()
    head = [f"HTTP {response.status_code} {response.reason_phrase}".rstrip()]
    head += [f"{k}: {v}" for k, v in response.headers.multi_items() if k != "x-airssys-version"]
    click.echo("\n".join(head) + ("\n" if include else ""), err=not include)
    sys.stdout.buffer.write(response.content)
    if response.content and not response.content.endswith(b"\n") and sys.stdout.isatty():
        sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


def _split_request(request: tuple[str, ...]) -> tuple[str, str]:
    from ...errors import AirssysError

    if len(request) == 1:
        method, path = "GET", request[0]
    elif len(request) == 2:
        method, path = request[0].upper(), request[1]
    else:
        raise AirssysError(f"expected [METHOD] PATH, got {' '.join(request)!r}")
    if method not in _METHODS:
        raise AirssysError(f"unknown method {method!r}; use one of {', '.join(sorted(_METHODS))}")
    if not path.startswith("/"):
        raise AirssysError(f"the path must start with '/', got {path!r}")
    return method, path


def _body(body: str | None, json_body: str | None) -> bytes:
    from ...errors import AirssysError

    if body is not None and json_body is not None:
        raise AirssysError("give --body or --json, not both")
    if json_body is not None:
        try:
            jsonlib.loads(json_body)
        except ValueError as e:
            raise AirssysError(f"--json is not valid JSON: {e}") from None
        return json_body.encode()
    if body is None:
        return b""
    if body == "@-":
        return sys.stdin.buffer.read()
    if body.startswith("@"):
        try:
            return Path(body[1:]).read_bytes()
        except OSError as e:
            raise AirssysError(f"--body {body}: {e.strerror or e}") from None
    return body.encode()


def _headers(values: tuple[str, ...]) -> list[tuple[str, str]]:
    from ...errors import AirssysError

    out = []
    for item in values:
        key, sep, value = item.partition(":")
        if not sep or not key.strip():
            raise AirssysError(f"--header expects 'NAME: VALUE', got {item!r}")
        out.append((key.strip(), value.strip()))
    return out
