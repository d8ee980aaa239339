"""What a registry flavour implements: three protocols, :class:`BlobStore`, :class:`Registry` and :class:`AuditLog`.

The embedded flavour (:mod:`.embedded`: a directory of blobs plus SQLite) implements all three; a second flavour
(Redis, say) implements the same and passes the same contract tests (``tests/test_registry.py``, parametrized over
implementations). What every flavour must guarantee:

* **Rules.** Names, versions, routes and digests are validated with :mod:`.rules`, and route ownership is decided by
  :func:`.rules.route_overlap`, before anything is written; a refused write raises the error of
  :mod:`airssys_web.errors` the rules name and changes nothing (no row, no history entry, no change token).
* **Atomic changes.** Each write method is one transaction: a reader (in any process) sees the state before it or
  after it, never a mix; a crash leaves one of the two. Two writers are serialized, so the history stays linear.
* **Immutable versions.** A (component, version) keeps its blob and settings forever: re-adding it with the same
  ones is a no-op, with others :class:`~airssys_web.errors.VersionExists`. Settings are compared by their canonical
  text (:meth:`VersionSettings.json_text`).
* **Rollback is an undo stack.** Each rollback undoes the newest change not undone yet: a pipeline change restores
  the pipeline it replaced; an activation returns to the version that was active before the current one was
  activated (rebuilt from the ``ok`` activations in the history), so repeated rollbacks walk back through deploys
  and pipeline changes until there is nothing left; a rollback during a canary aborts the canary. A rollback
  records which change it undid (undos are not changes themselves).
* **Kinds and pipelines.** A component is a ``route`` component or a ``middleware`` stage, fixed by its first
  version; a stage owns no route. A route component's pipeline (``Deployment.stages``) names distinct middleware
  components with an active version, checked by :func:`.rules.check_pipeline` in the write's transaction.
* **Change token.** :meth:`Registry.change_token` differs after every committed change by any process and is cheap
  enough to poll every 200 ms (servers watch it); compare tokens for inequality only.
* **Blobs first.** A version names a blob that is already stored (:meth:`BlobStore.put` before the write), so a
  server never sees a version whose bytes are missing.
* **Shared by every process.** Secrets (:attr:`Registry.secrets`), guest KV data (:meth:`Registry.kv_store`) and
  auto-rollback counters (:attr:`Registry.outcomes`) live with the registry, so every worker and every host that
  opens it sees the same. A flavour whose changes can be pushed also implements :class:`ChangeFeed`.

Records (:mod:`.records`) are plain immutable values; a flavour builds them from its own storage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from ...capabilities.kv import KVStore
from ...capabilities.secrets import SecretBackend
from ..settings import VersionSettings
from .records import AuditEntry, ComponentInfo, Deployment, HistoryEntry, VersionInfo

__all__ = ["AuditLog", "BlobStore", "ChangeFeed", "OutcomeCounters", "Registry"]


class BlobStore(Protocol):
    """Uploaded ``.wasm`` files, content-addressed by their SHA-256 (64 lowercase hex digits), written once.

    There is no path in the protocol: a blob may live in a directory or a database; only the embedded store's
    layout has paths (:meth:`DirectoryBlobStore.path <airssys_web.lifecycle.registry.blobs.DirectoryBlobStore.path>`).
    """

    def put(self, data: bytes) -> str:
        """Store ``data`` durably (done when this returns) and return its SHA-256; storing it again is a no-op and
        repairs a corrupt copy."""
        ...

    def read(self, sha256: str) -> bytes:
        """The blob's bytes, checked against ``sha256``: NotFound if absent, RegistryError if corrupt."""
        ...

    def size(self, sha256: str) -> int | None:
        """The blob's size in bytes, or ``None`` if it is not stored (a cheap check before an upload)."""
        ...


class AuditLog(Protocol):
    """Every change attempted through the admin API: who (token id), what, how it ended. Append-only; appending
    does not move the registry's change token (there is nothing for a server to apply)."""

    def append(self, action: str, target: str, outcome: str, *, token_id: str, detail: str = "") -> None: ...

    def entries(self, limit: int = 100) -> list[AuditEntry]:
        """The newest ``limit`` entries, oldest first."""
        ...


class OutcomeCounters(Protocol):
    """Requests completed and failed per (component, version), summed over every process serving the registry (what
    auto-rollback decides on). Counters only grow; they are statistics, so a flavour may expire idle ones."""

    def add(self, component: str, version: str, completed: int, failed: int) -> tuple[int, int]:
        """Add one process's new outcomes; return the totals (completed, failed) after the addition."""
        ...

    def totals(self, component: str, version: str) -> tuple[int, int]: ...


@runtime_checkable
class ChangeFeed(Protocol):
    """Optional: a registry that pushes its changes (Redis pub/sub); servers still poll the change token, which is
    the fallback when a message is lost."""

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (on another thread) soon after any process commits a change; returns an unsubscribe
        function."""
        ...


class Registry(Protocol):
    """Components, their immutable versions, what serves each route, the history of changes, and a change token.

    ``blobs`` and ``audit`` are the registry's :class:`BlobStore` and :class:`AuditLog`. Write methods take an
    ``actor`` (who the history records) and return the resulting :class:`Deployment`.
    """

    @property
    def blobs(self) -> BlobStore: ...

    @property
    def audit(self) -> AuditLog: ...

    @property
    def secrets(self) -> SecretBackend:
        """Where secret values go; versions keep only references."""
        ...

    @property
    def outcomes(self) -> OutcomeCounters: ...

    def kv_store(self) -> KVStore:
        """A new handle on the components' KV data (the caller closes it)."""
        ...

    @property
    def artifacts_dir(self) -> Path:
        """A local directory for compiled artifacts of the blobs (compiled code is trusted by wasmtime, so it is
        never shared over the network: each machine compiles its own)."""
        ...

    # -- writes ---------------------------------------------------------------------------------------------
    def deploy(self, name: str, version: str, *, sha256: str, route: str | None = None,
               settings: VersionSettings | None = None, actor: str = "cli", strategy: str = "immediate",
               auto_rollback: str | None = None, allow_nested: bool = False, kind: str = "route") -> Deployment:
        """Add ``version`` (if new), claim or move the route, and make the version active, in one transaction.
        ``route`` is required on a route component's first deploy (omitted later, it keeps its route) and refused
        for a ``middleware`` one (:func:`.rules.check_kind`). A canary in progress ends. ``auto_rollback`` is the
        policy text stored with the deployment."""
        ...

    def add_version(self, name: str, version: str, *, sha256: str, route: str | None = None,
                    settings: VersionSettings | None = None, allow_nested: bool = False,
                    kind: str = "route") -> VersionInfo:
        """Record ``version`` (and the component, on first use) without activating it, e.g. before a canary."""
        ...

    def activate(self, name: str, version: str, *, actor: str = "cli", action: str = "activate",
                 strategy: str = "immediate", auto_rollback: str | None = None) -> Deployment:
        """Make an existing version active; the formerly active one becomes the rollback target."""
        ...

    def start_canary(self, name: str, version: str, percent: int, *, actor: str = "cli",
                     auto_rollback: str | None = None) -> Deployment:
        """Serve ``version`` to ``percent`` % of clients (1-100) beside the active version, or change the share of
        the canary already running (Conflict for another canary or for the active version)."""
        ...

    def promote(self, name: str, *, actor: str = "cli") -> Deployment:
        """Make the canary the active version (NotFound without a canary)."""
        ...

    def rollback(self, name: str, to_version: str | None = None, *, actor: str = "cli", reason: str = "",
                 expect: str | None = None) -> Deployment:
        """Undo the last change (see the module docstring), or activate ``to_version``. With ``expect``, the newest
        version must still be ``expect`` or Conflict is raised and nothing changes."""
        ...

    def set_pipeline(self, name: str, stages: Sequence[str], *, actor: str = "cli") -> Deployment:
        """Replace the pipeline in front of route component ``name`` (``[]`` clears it), recorded in its history
        (action ``pipeline``, with the stages); the same pipeline again is a no-op that records nothing."""
        ...

    def pipelines_using(self, stage: str) -> list[str]:
        """The route components whose pipeline includes ``stage``, by name."""
        ...

    def record(self, name: str, version: str, *, action: str, strategy: str, actor: str, outcome: str,
               detail: str = "") -> HistoryEntry:
        """Add a history entry that changes nothing else (a failed deploy); it does not move the change token."""
        ...

    def check_route(self, name: str, route: str, *, allow_nested: bool = False) -> None:
        """Raise RouteConflict now if ``name`` could not claim ``route`` (a cheap check before compiling; the
        write checks again)."""
        ...

    # -- reads ----------------------------------------------------------------------------------------------
    def get_component(self, name: str) -> ComponentInfo: ...

    def components(self) -> list[ComponentInfo]:
        """Every component, by name."""
        ...

    def versions(self, name: str) -> list[VersionInfo]:
        """The versions of ``name``, oldest first by SemVer precedence (:func:`.rules.version_key`)."""
        ...

    def get_version(self, name: str, version: str) -> VersionInfo: ...

    def get_deployment(self, name: str) -> Deployment:
        """What serves ``name`` now; NotFound if nothing does."""
        ...

    def active(self) -> list[Deployment]:
        """Every active deployment, by component name."""
        ...

    def history(self, name: str | None = None) -> list[HistoryEntry]:
        """The changes of ``name`` (or of every component), oldest first."""
        ...

    def change_token(self) -> int: ...

    def close(self) -> None:
        """Release the registry's resources; idempotent. Later calls raise RegistryError."""
        ...
