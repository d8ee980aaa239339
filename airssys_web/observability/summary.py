"""The metrics as JSON per version: what the dashboard polls (``GET /_airssys/api/metrics``).

It is read from the same samples a Prometheus scrape gets (``Metrics.samples()``), so the dashboard's rates and
percentiles agree with the series, including every worker's in multiprocess mode. The dashboard computes rates
and quantiles from the difference between two polls, as ``rate()`` and ``histogram_quantile()`` would.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client.metrics_core import Metric

from .stats import BUCKETS


def _version(out: dict[tuple[str, str], dict[str, Any]], component: str, version: str) -> dict[str, Any]:
    entry = out.get((component, version))
    if entry is None:
        entry = out[(component, version)] = {
            "component": component, "version": version, "requests": {}, "errors": {}, "outbound": {},
            "instances": {"idle": 0, "busy": 0}, "percent": None,
            "duration": {"buckets": [0.0] * (len(BUCKETS) + 1), "sum": 0.0, "count": 0.0},
            "stage": None}
    return entry


def _stage(entry: dict[str, Any]) -> dict[str, Any]:
    if entry["stage"] is None:
        entry["stage"] = {"requests": {}, "duration": {"buckets": [0.0] * (len(BUCKETS) + 1), "sum": 0.0,
                                                        "count": 0.0}}
    stage: dict[str, Any] = entry["stage"]
    return stage


def _bucket_index(le: str) -> int | None:
    bound = math.inf if le == "+Inf" else float(le)
    for i, b in enumerate(BUCKETS):
        if math.isclose(b, bound):
            return i
    return len(BUCKETS) if bound == math.inf else None


def summarize(families: Iterable[Metric]) -> dict[str, Any]:
    """``{"at", "bounds", "versions": [...], "swaps": {component: n}}``; each version has ``requests`` by status,
    ``errors`` by kind, ``outbound`` by outcome, ``instances`` (idle, busy), ``percent`` of clients (None when not
    serving), ``duration`` (cumulative bucket counts over ``bounds`` + ``+Inf``, sum, count) and ``stage`` (the
    same for its calls as a pipeline stage, or None)."""
    versions: dict[tuple[str, str], dict[str, Any]] = {}
    swaps: dict[str, float] = {}
    for family in families:
        for sample in family.samples:
            labels, name, value = sample.labels, sample.name, sample.value
            component, version = labels.get("component"), labels.get("version")
            if name == "airssys_swaps_total" and component:
                swaps[component] = swaps.get(component, 0.0) + value
            if component is None or version is None:
                continue
            if name == "airssys_requests_total":
                requests = _version(versions, component, version)["requests"]
                requests[labels["status"]] = requests.get(labels["status"], 0.0) + value
            elif name == "airssys_guest_errors_total":
                errors = _version(versions, component, version)["errors"]
                errors[labels["kind"]] = errors.get(labels["kind"], 0.0) + value
            elif name == "airssys_outbound_requests_total":
                outbound = _version(versions, component, version)["outbound"]
                outbound[labels["outcome"]] = outbound.get(labels["outcome"], 0.0) + value
            elif name == "airssys_instances":
                _version(versions, component, version)["instances"][labels["state"]] += value
            elif name == "airssys_canary_percent":
                _version(versions, component, version)["percent"] = value
            elif name == "airssys_stage_requests_total":
                requests = _stage(_version(versions, component, version))["requests"]
                requests[labels["status"]] = requests.get(labels["status"], 0.0) + value
            elif name.startswith(("airssys_request_duration_seconds", "airssys_stage_duration_seconds")):
                entry = _version(versions, component, version)
                duration = (_stage(entry) if name.startswith("airssys_stage") else entry)["duration"]
                if name.endswith("_bucket"):
                    index = _bucket_index(labels.get("le", ""))
                    if index is not None:
                        duration["buckets"][index] += value
                elif name.endswith("_sum"):
                    duration["sum"] += value
                elif name.endswith("_count"):
                    duration["count"] += value
    ordered = sorted(versions.values(), key=lambda e: (e["component"], e["version"]))
    return {"at": time.time(), "bounds": list(BUCKETS), "versions": ordered, "swaps": swaps}


__all__ = ["summarize"]
