"""Observability: what airssys-web tells an operator about itself - metrics, logs and traces.

A base layer, beside ``errors`` and ``units``: the runtime, lifecycle and web layers call it through small hooks,
and it imports none of them.

* :mod:`.stats` - per-generation counters, the only thing a request touches (no labels, no locks on the loop);
* :mod:`.metrics` - the Prometheus series, copied from those counters when scraped (multiprocess mode for
  ``serve --workers``);
* :mod:`.summary` - the same numbers as JSON per version, for the dashboard;
* :mod:`.logs` - the request a line belongs to (a context variable), request ids, the JSON formatter;
* :mod:`.tracing` - OpenTelemetry spans through the API only, free while no SDK is installed.

Nothing here starts at import; the one thread (the multiprocess flusher) belongs to a :class:`Metrics` and
stops with its ``close()``.
"""
