"""The one exception tree of airssys-web.

Every error a user can see is one of these; wasmtime's own errors are mapped to them exactly once, at the
runtime boundary (``airssys_web.runtime.instance``), so callers never need to import wasmtime to handle failures.

Each class says how it reaches an HTTP client: ``status``, ``reason`` (the short public ``error`` of the JSON body)
and ``public`` (whether the message itself may be shown as ``detail``: a refused deploy says what to fix, while a
guest's trap message stays in the server log). ``airssys_web.web.errors`` renders them, in one place.

    AirssysError
    ├── DeployError               a deploy was refused; nothing changed (CLI exit code 2, admin API 4xx)
    │   ├── InvalidComponent      not wasm, a core module, wrong world, missing export, unsatisfiable import
    │   ├── InvalidName           component name, version or route is malformed
    │   ├── InvalidManifest       a Spin app manifest (spin.toml) is malformed or asks for what cannot be mapped
    │   ├── RouteConflict         the route is owned by another component
    │   ├── VersionExists         this (component, version) was already deployed with other content
    │   ├── NotFound              unknown component or version
    │   └── Conflict              another change of the component is in progress or happened meanwhile (409)
    ├── AuthError                 the admin API refused the credentials (401 missing/forged/expired, 403 scope)
    ├── RegistryError             the registry directory is unusable (corrupt database, unwritable, ...)
    │   └── RegistryUnavailable   the registry's server (Redis) cannot be reached now; a passing condition
    ├── BuildError                a guest could not be built from source (toolchain error, missing tool)
    ├── ArtifactError             a cached compiled artifact failed its checksum or could not be loaded
    ├── CapabilityError           a grant or limit setting is malformed
    ├── OutboundDenied            an outbound request was refused by policy before any connection
    ├── OutboundError             a permitted outbound request failed (connect, size or header caps, ...)
    │   └── OutboundTimeout       it ran past a timeout or the caller's deadline
    ├── KVError                   a key-value operation failed (bad key, quota exceeded, storage error)
    ├── RequestError              a request was refused before it reached the guest
    │   ├── BodyTooLarge          the request body is over the route's max_body (413)
    │   └── BodyTimeout           the request body stalled or did not finish within the route's deadline (408)
    └── GuestError                a request could not be answered by the guest (HTTP status in ``status``)
        ├── GuestTrap             the guest trapped (500); the instance is discarded
        ├── GuestTimeout          the epoch deadline expired (504); the instance is discarded
        ├── GuestMemoryLimit      the guest hit its memory cap (500); the instance is discarded
        ├── BadGuestResponse      invalid status or header from the guest (502)
        ├── PoolExhausted         no instance became free within the wait bound (503)
        └── HostClosed            the host is shutting down and takes no new calls (503)
"""

from __future__ import annotations


class AirssysError(Exception):
    """Base of every airssys-web error."""

    #: The HTTP status a client gets for this error.
    status: int = 500
    #: The short, public ``error`` of the JSON body; the message is only shown (as ``detail``) when ``public``.
    reason: str = "internal error"
    public: bool = False
    #: Seconds a client should wait before retrying (a ``Retry-After`` header), for a passing condition.
    retry_after: int | None = None


class DeployError(AirssysError):
    """A deploy or registry change was refused; the registry and the active versions are unchanged."""

    status = 422
    reason = "deploy refused"
    public = True


class InvalidComponent(DeployError):
    """The uploaded bytes are not a component that satisfies the ``airssys:web/route`` contract."""

    status = 422
    reason = "invalid component"
    public = True


class InvalidName(DeployError):
    """A component name, version string or route is malformed."""

    status = 400
    reason = "invalid input"
    public = True


class InvalidManifest(DeployError):
    """A Spin app manifest (``spin.toml``) is malformed, or a component in it cannot be deployed as it asks."""

    status = 400
    reason = "invalid manifest"
    public = True


class RouteConflict(DeployError):
    """The route (or a route overlapping it exactly) belongs to another component."""

    status = 409
    reason = "route conflict"
    public = True


class VersionExists(DeployError):
    """The version was already deployed with different content; versions are immutable."""

    status = 409
    reason = "version exists"
    public = True


class NotFound(DeployError):
    """The named component or version does not exist in the registry."""

    status = 404
    reason = "not found"
    public = True


class Conflict(DeployError):
    """Another change of the same component is in progress, or the state changed since the caller looked."""

    status = 409
    reason = "conflict"
    public = True


class PipelineError(DeployError):
    """Route components and middleware stages mixed up: a stage given a route (or a route component none), a
    route component used as a stage, a pipeline in front of a stage, a stage listed twice, or a component whose
    new version changes its kind."""

    status = 422
    reason = "invalid pipeline"
    public = True


class AuthError(AirssysError):
    """The admin API refused the request's credentials; ``status`` is 401 (who are you?) or 403 (not allowed)."""

    public = True

    def __init__(self, message: str, *, status: int = 401) -> None:
        super().__init__(message)
        self.status = status
        self.reason = "unauthorized" if status == 401 else "forbidden"


class RegistryError(AirssysError):
    """The registry directory or database cannot be used."""

    status = 503
    reason = "registry unavailable"
    public = True


class RegistryUnavailable(RegistryError):
    """The registry lives on a server (Redis) that cannot be reached now. A host keeps serving what it loaded and
    retries with backoff; a command can simply be run again once the server is back."""

    retry_after = 1


class BuildError(AirssysError):
    """A guest could not be built from its sources; the message carries the toolchain's own error."""

    status = 422
    reason = "build failed"
    public = True


class ArtifactError(AirssysError):
    """A stored compiled artifact is missing, corrupt or stale; callers recompile from the blob."""


class CapabilityError(AirssysError):
    """A capability grant or resource limit is malformed."""

    status = 400
    reason = "invalid settings"
    public = True


class OutboundDenied(AirssysError):
    """An outbound request was refused by the component's grants; no connection was made."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"denied: {reason}")
        self.reason = reason


class OutboundError(AirssysError):
    """A permitted outbound request failed (connect error, timeout, response over the size or header caps)."""


class OutboundTimeout(OutboundError):
    """A permitted outbound request ran past a timeout, its total time or the caller's deadline."""


class KVError(AirssysError):
    """A key-value operation failed: a bad key, a quota exceeded, or the store is unavailable."""


class RequestError(AirssysError):
    """A request was refused before it reached the guest; the message tells the client what to change."""

    status = 400
    reason = "bad request"
    public = True


class BodyTooLarge(RequestError):
    """The request body is larger than the route's ``max_body``."""

    status = 413
    reason = "request body too large"


class BodyTimeout(RequestError):
    """The request body stopped arriving (``body_timeout``) or did not finish within the route's deadline; the
    connection is closed after the answer."""

    status = 408
    reason = "request body timeout"


class GuestError(AirssysError):
    """A request failed inside or around the guest; ``status`` is the HTTP status to answer with. Its message
    names the version and the cause for the server's log; a client only sees ``reason``."""

    status = 500
    reason = "the component failed"

    def __init__(self, message: str, *, component: str = "", version: str = "") -> None:
        super().__init__(message)
        self.component = component
        self.version = version


class GuestTrap(GuestError):
    """The guest trapped; its Store is poisoned and the instance is discarded."""

    status = 500


class GuestTimeout(GuestError):
    """The guest ran past its deadline and was interrupted."""

    status = 504
    reason = "the component ran past its deadline"


class GuestMemoryLimit(GuestError):
    """The guest tried to grow its memory past the configured cap."""

    status = 500


class BadGuestResponse(GuestError):
    """The guest answered with an invalid status code or header."""

    status = 502
    reason = "the component sent an invalid response"


class PoolExhausted(GuestError):
    """Every instance stayed busy for the whole wait bound."""

    status = 503
    reason = "the component is busy; retry shortly"
    retry_after = 1


class StageUnavailable(GuestError):
    """A route's pipeline names a stage this server cannot run (it failed to load): the route is not served
    without it, since a stage may be what guards it."""

    status = 503
    reason = "unavailable"
    retry_after = 5


class HostClosed(GuestError):
    """The host is shutting down: its worker threads take no new calls."""

    status = 503
    reason = "the server is shutting down; retry shortly"
    retry_after = 1


#: How the admin API carries a refusal: (class, HTTP status, the response's ``error`` reason). The server answers
#: every error with its own class's status and reason (:mod:`airssys_web.web.errors`); the client raises the class
#: of a reason it reads here.
API_ERRORS: tuple[tuple[type[AirssysError], int, str], ...] = tuple(
    (cls, cls.status, cls.reason)
    for cls in (NotFound, RouteConflict, VersionExists, Conflict, InvalidName, InvalidComponent, PipelineError,
                CapabilityError, DeployError, RegistryError)
)
