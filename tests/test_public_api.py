"""Pin the curated public API: adding or removing a name must be a deliberate change to this list."""

import airssys_web

EXPECTED = {
    "AdminClient", "AuthError", "BuildError", "Capability", "Conflict", "Grants", "KVError",
    "AirssysError", "AirssysHost", "AirssysMiddleware", "ArtifactError", "BadGuestResponse", "CapabilityError",
    "ComponentInfo", "ComponentReport", "DeployError", "Deployment", "EmbeddedRegistry", "GuestError",
    "GuestMemoryLimit", "GuestTimeout", "GuestTrap", "HistoryEntry", "InvalidComponent", "InvalidName", "Limits",
    "NotFound", "OutboundDenied", "OutboundError", "OutboundTimeout", "PoolExhausted", "Registry", "RegistryError",
    "RouteConflict", "VersionExists", "VersionInfo", "__version__", "build_app", "check_component", "deploy",
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
