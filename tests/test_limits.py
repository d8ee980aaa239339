"""Limits: the value object, and real guests that loop, burn fuel, grow memory and recurse without bound."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from caps_support import caps_wat, generation
from support import artifacts, text_component

from airssys_web import _native
from airssys_web.errors import (
    BadGuestResponse,
    CapabilityError,
    GuestMemoryLimit,
    GuestTimeout,
    GuestTrap,
    InvalidComponent,
    PoolExhausted,
)
from airssys_web.lifecycle.deploy import deploy
from airssys_web.lifecycle.registry import EmbeddedRegistry
from airssys_web.lifecycle.settings import VersionSettings
from airssys_web.runtime.artifacts import sha256_hex
from airssys_web.runtime.engine import engine_fingerprint
from airssys_web.runtime.imports import HostContext
from airssys_web.runtime.instance import native_error
from airssys_web.runtime.limits import Limits
from airssys_web.units import GiB, KiB, MiB, parse_size


@pytest.mark.parametrize(("text", "expected"), [
    ("64MiB", 64 * MiB), ("64mib", 64 * MiB), ("512KiB", 512 * KiB), ("1GiB", GiB), ("1.5MiB", 3 * MiB // 2),
    ("2MB", 2_000_000), ("100B", 100), ("  8 MiB ", 8 * MiB), ("3", 3 * MiB), (3, 3 * MiB), (0.5, MiB // 2),
])
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["lots", "-1MiB", "1.5B", "MiB", "1 TiB", True])
def test_parse_size_refuses(text: str | bool) -> None:
    with pytest.raises(CapabilityError, match="size"):
        parse_size(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(("fields", "message"), [
    ({"timeout": 0}, "timeout=0"), ({"timeout": 3601}, "timeout"), ({"timeout": "5 minutes"}, "write a duration"),
    ({"timeout": float("nan")}, "timeout"), ({"memory": 1024}, "64 KiB"), ({"memory": 2.5 * MiB}, "whole number"),
    ({"max_instances": 0}, "max_instances"), ({"min_instances": 5, "max_instances": 2}, "min_instances"),
    ({"max_body": -1}, "max_body"), ({"fuel": 0}, "fuel"), ({"fuel": 1.5}, "fuel"), ({"fuel": True}, "fuel"),
    ({"acquire_timeout": -1}, "acquire_timeout"),
])
def test_bad_limits(fields: dict[str, object], message: str) -> None:
    with pytest.raises(CapabilityError, match=message):
        Limits(**fields)  # type: ignore[arg-type]


def test_limits_round_trip_and_user_forms() -> None:
    limits = Limits(timeout=2, memory=64 * MiB, fuel=10**9, max_instances=4)
    assert Limits.from_dict(limits.to_dict()) == limits
    assert Limits.from_user({"memory": "64MiB", "max_body": 1, "fuel": 5}) == {"memory": 64 * MiB,
                                                                              "max_body": MiB, "fuel": 5}
    with pytest.raises(CapabilityError, match="unknown limit"):
        Limits.from_dict({"memroy": 1})
    assert dict(limits.describe())["memory"] == "64 MiB" and dict(limits.describe())["fuel"] == "1,000,000,000"


# -- real guests -------------------------------------------------------------------------------------------------

def test_busy_loop_is_interrupted_and_its_instance_replaced(wat_guest: Callable[[str], bytes]) -> None:
    gen = generation(wat_guest("spin"), {"limits": {"timeout": 0.05}})
    for expected_discards in (1, 2):
        with pytest.raises(GuestTimeout, match=r"exceeded its 0.05s deadline"):
            gen.call("GET", "/")
        assert gen.pool.discarded == expected_discards
    gen.close()


def test_fuel_stops_a_busy_loop_deterministically(wat_guest: Callable[[str], bytes]) -> None:
    gen = generation(wat_guest("spin"), {"limits": {"timeout": 60, "fuel": 100_000}})
    assert gen.ctx.fuel
    with pytest.raises(GuestTimeout, match=r"ran out of fuel \(its budget is 100,000 per request\)") as info:
        gen.call("GET", "/")
    assert info.value.status == 504
    gen.close()


def test_fuel_budget_is_per_request(wat_guest: Callable[[str], bytes]) -> None:
    gen = generation(wat_guest("echo"), {"limits": {"fuel": 1_000_000, "max_instances": 1}})
    for _ in range(20):  # far more than one budget in total: each call gets a fresh one
        assert gen.call("POST", "/x", body=b"abc").body == b"abc"
    assert gen.pool.discarded == 0
    gen.close()


def test_fuel_versions_use_a_separate_engine_and_artifacts(tmp_path: Path) -> None:
    wasm, sha = text_component("fuel"), sha256_hex(text_component("fuel"))
    cache = artifacts(tmp_path)
    plain, metered = cache.get(sha, wasm), cache.get(sha, wasm, fuel=True)
    assert plain is not metered and cache.compilations == 2
    assert not plain.fuel and metered.fuel
    assert cache.has_artifact(sha) and cache.has_artifact(sha, fuel=True)
    assert engine_fingerprint() != engine_fingerprint(fuel=True)


def test_memory_growth_past_the_cap_is_a_memory_limit(wat_guest: Callable[[str], bytes]) -> None:
    """The guest prints nothing: the store's limiter, not its output, tells that the cap was hit."""
    gen = generation(wat_guest("grow"), {"limits": {"memory": 2 * MiB}})
    with pytest.raises(GuestMemoryLimit, match=r"hit its memory limit of 2 MiB .*unreachable") as info:
        gen.call("GET", "/")
    assert info.value.status == 500 and gen.pool.discarded == 1
    gen.close()


def test_unbounded_recursion_is_a_stack_overflow_trap() -> None:
    gen = generation(caps_wat("recurse"), {})
    with pytest.raises(GuestTrap, match="stack overflow"):
        gen.call("GET", "/")
    assert gen.pool.discarded == 1
    gen.close()


def test_memory_cap_below_the_initial_memory_refuses_the_deploy(tmp_path: Path) -> None:
    with EmbeddedRegistry(tmp_path) as reg:
        deploy(reg, "ok", caps_wat("recurse"), version="1.0.0", route="/ok",  # 1 page
               settings=VersionSettings.of(memory=64 * KiB))
        guest = text_component("x" * 70_000)  # its data needs two pages
        with pytest.raises(InvalidComponent, match=r"needs 128 KiB of linear memory at start, more than its memory "
                                                   r"limit of 64 KiB; deploy it with a larger --memory"):
            deploy(reg, "big", guest, version="1.0.0", route="/big", settings=VersionSettings.of(memory=64 * KiB))


CTX = HostContext("c", "1.0.0")


def _fault(kind: str, detail: str, status: int | None = None) -> _native.GuestFault:
    fault = _native.GuestFault(detail)
    fault.kind, fault.detail, fault.status = kind, detail, status
    return fault


@pytest.mark.parametrize(("kind", "status", "error", "message"), [
    ("timeout", None, GuestTimeout, "c@1.0.0 exceeded its 1s deadline"),
    ("fuel", None, GuestTimeout, r"c@1.0.0 ran out of fuel \(its budget is 10 per request\)"),
    ("memory", None, GuestMemoryLimit, "memory limit"),
    ("stack", None, GuestTrap, "stack overflow"),
    ("trap", None, GuestTrap, "unreachable"),
    ("host", None, GuestTrap, "host"),
    ("bad-response", None, BadGuestResponse, "invalid"),
    ("error-code", 504, BadGuestResponse, "error-code"),
    ("exhausted", None, PoolExhausted, "slot"),
    ("link", None, InvalidComponent, "does not provide"),
    ("start-memory", None, InvalidComponent, "at start"),
])
def test_native_faults_map_onto_the_tree(kind: str, status: int | None, error: type[Exception], message: str) -> None:
    texts = {"timeout": "c@1.0.0 exceeded its 1s deadline", "memory": "c@1.0.0 hit its memory limit of 8 MiB",
             "stack": "c@1.0.0 trapped: stack overflow", "trap": "c@1.0.0 trapped: unreachable",
             "host": "c@1.0.0 trapped in a host function", "bad-response": "c@1.0.0 answered with invalid status",
             "error-code": "c@1.0.0 answered with error-code ConnectionTimeout", "exhausted": "no slot is free",
             "link": "c cannot be instantiated: it imports x, which this host does not provide",
             "start-memory": "c needs 128 KiB of linear memory at start"}
    mapped = native_error(_fault(kind, texts.get(kind, kind), status), CTX, Limits(timeout=1, memory=8 * MiB, fuel=10))
    assert type(mapped) is error
    assert re.search(message, str(mapped)), str(mapped)
    if status is not None:
        assert getattr(mapped, "status", None) == status
