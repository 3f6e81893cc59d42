"""Prometheus metrics of the operator process (served on --metrics-port)."""

from prometheus_client import Counter, Gauge, Histogram

from items_operator.observe import JobState
from items_operator.plan import Plan

RECONCILES = Counter(
    "items_operator_reconciles_total",
    "Reconcile passes over ItemServices, by result.",
    ["result"],
)
RECONCILE_SECONDS = Histogram(
    "items_operator_reconcile_duration_seconds",
    "Wall time of one reconcile pass (reads, decision, writes).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WRITES = Counter(
    "items_operator_writes_total",
    "Writes to the API server, by action and kind (0 in steady state).",
    ["action", "kind"],
)
WRITES_REFUSED = Counter(
    "items_operator_writes_refused_total",
    "Writes the API server refused, by action, kind and why (Forbidden, QuotaExceeded, ...).",
    ["action", "kind", "refusal"],
)
READS = Counter(
    "items_operator_reads_total",
    "Reads from the API server (get, list), by verb and kind: the cost of each reconcile pass "
    "(answers from the watch-fed caches are not requests and are not counted).",
    ["verb", "kind"],
)
CACHE_OBJECTS = Gauge(
    "items_operator_cache_objects",
    "Reduced records in the watch-fed caches (--cache-reads on), by kind.",
    ["kind"],
)
CACHE_UNSYNCED = Gauge(
    "items_operator_cache_unsynced",
    "Informers (one per cached kind and namespace) not listed yet, or refused since: the "
    "passes of their namespace wait (a missing RoleBinding, a role without list or watch).",
)
WATCH_REQUESTS = Counter(
    "items_operator_watch_requests_total",
    "List pages and watch requests of the watch-fed caches' informers, by kind and verb "
    "(a healthy watch is one request per --watch-timeout or per server timeout, not per pass).",
    ["kind", "verb"],
)
WATCH_RESTARTS = Counter(
    "items_operator_watch_restarts_total",
    "Informer watches ended other than by the server: inactive (silent for --watch-timeout, "
    "resumed), expired (410: listed again), short (ended at once, no event: retried with "
    "backoff), error (retried with backoff), unreadable (an object skipped), by kind.",
    ["kind", "reason"],
)
HEAP_TRIMMED = Counter(
    "items_operator_heap_trimmed_bytes",
    "Resident memory the periodic malloc_trim handed back to the kernel (--trim-seconds): "
    "memory freed by Python that glibc had kept inside the heap.",
)
HEAP_TRIM_SECONDS = Histogram(
    "items_operator_heap_trim_seconds",
    "How long each periodic malloc_trim held the event loop.",
    buckets=(0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0),
)
MIGRATIONS = Counter(
    "items_operator_migrations_total",
    "Finished migration Jobs, by outcome.",
    ["outcome"],
)
MIGRATION_SECONDS = Histogram(
    "items_operator_migration_duration_seconds",
    "Migration Job run time, start to completion.",
    buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800),
)
ROLLBACKS = Counter(
    "items_operator_rollbacks_total",
    "Automatic rollbacks to the last good image, by failure reason.",
    ["reason"],
)
LEADER = Gauge(
    "items_operator_leader",
    "1 while this replica may write (it holds the Lease within its renew deadline), else 0.",
)
LEASE_REQUESTS = Counter(
    "items_operator_lease_requests_total",
    "Leader election requests (read, create, acquire, renew) by result; apart from "
    "reads_total and writes_total, which count the ItemServices' cost.",
    ["request", "result"],
)
FENCED = Counter(
    "items_operator_fenced_total",
    "Reconcile passes stopped before a write because this replica could not prove it leads.",
)
UPGRADE_WAVE_ROLLING = Gauge(
    "items_operator_upgrade_wave_rolling",
    "ItemServices rolling out a release only this operator version's rendering asked for.",
)
UPGRADE_WAVE_HALTED = Gauge(
    "items_operator_upgrade_wave_halted",
    "1 when an operator-driven rollout was rolled back and the upgrade wave stopped.",
)


def record_outcomes(plan: Plan) -> None:
    """A pass's rollback and finished migration, counted once (the pass that saw them)."""
    if plan.rolled_back is not None:
        ROLLBACKS.labels(plan.rolled_back.kind.value).inc()
    job = plan.migration_finished
    if job is not None:
        outcome = "succeeded" if job.state is JobState.SUCCEEDED else "failed"
        MIGRATIONS.labels(outcome).inc()
        if job.started_at is not None and job.finished_at is not None:
            MIGRATION_SECONDS.observe((job.finished_at - job.started_at).total_seconds())
