"""Pin the curated public API: adding or removing a name must be a deliberate change to this list."""

import airssys_web

EXPECTED = {
    "DeployRequest", "Lifecycle", "LocalLifecycle", "RemoteLifecycle",
    "AuthError", "BuildError", "Capability", "Conflict", "Grants", "KVError",
    "AirssysError", "AirssysHost", "AirssysMiddleware", "ArtifactError", "BadGuestResponse", "CapabilityError",
    "ComponentInfo", "ComponentReport", "DeployError", "Deployment", "EmbeddedRegistry", "GuestError",
    "GuestMemoryLimit", "GuestTimeout", "GuestTrap", "HistoryEntry", "InvalidComponent", "InvalidName", "Limits",
    "NotFound", "OutboundDenied", "OutboundError", "OutboundTimeout", "PoolExhausted", "Registry", "RegistryError",
    "RouteConflict", "VersionExists", "VersionInfo", "__version__", "build_app", "check_component", "deploy",
    "ComponentClient", "build_component", "VersionSettings", "configure_logging", "AirssysWSGIMiddleware",
    "Pipeline", "PipelineError",
    "RedisRegistry", "RegistryUnavailable", "open_registry",
}


def test_all_is_pinned() -> None:
    assert set(airssys_web.__all__) == EXPECTED


def test_every_public_name_exists_and_is_documented() -> None:
    for name in airssys_web.__all__:
        obj = getattr(airssys_web, name)
        if name != "__version__":
            assert obj.__doc__, f"{name} has no docstring"


def test_errors_form_one_tree() -> None:
    for name in airssys_web.__all__:
        obj = getattr(airssys_web, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, airssys_web.AirssysError), name


def test_public_names_load_on_first_use() -> None:
    """``import airssys_web`` loads only the error tree; each other name imports its module when first used."""
    import subprocess
    import sys

    probe = ("import sys, airssys_web\n"
             "heavy = [m for m in ('airssys_web.web.middleware', 'airssys_web.web.wsgi', 'airssys_web.lifecycle.host', "
             "'starlette', 'httpx', 'airssys_web._native') if m in sys.modules]\n"
             "assert not heavy, heavy\n"
             "assert airssys_web.deploy.__module__ == 'airssys_web.lifecycle.deploy'\n"
             "assert 'airssys_web.lifecycle.deploy' in sys.modules\n"
             "print('ok')")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr
    assert "nonexistent" not in dir(airssys_web)
    try:
        airssys_web.nonexistent  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as e:
        assert "no attribute 'nonexistent'" in str(e)
    else:
        raise AssertionError("a missing name must raise AttributeError")
