"""Operator entry point: logging, metrics endpoint, leader election, then Kopf's own loop.

Run as `python -m items_operator`; Kopf handles SIGTERM/SIGINT and stops the daemons cleanly.
"""

from __future__ import annotations

import argparse
import math
import os
import random
from collections.abc import Sequence
from pathlib import Path

import kopf
from prometheus_client import start_http_server

import items_logging
from items_operator import memory_report
from items_operator.access import missing_secret_access
from items_operator.election import Timings
from items_operator.fleet import DEFAULT_WAVE_SIZE, UpgradeWave
from items_operator.kopf_settings import (
    DEFAULT_WATCH_TIMEOUT,
    NAMESPACE_NAME,
    apply_scanning,
    watch_timeouts,
)
from items_operator.leadership import LeaseConfig, holder_identity
from items_operator.pacing import (
    DEFAULT_CONCURRENCY,
    DEFAULT_RESYNC_SECONDS,
    DEFAULT_STARTUP_RATE,
)

DEFAULT_PEERING = "items-operator"
DEFAULT_LEASE = "items-operator"
# In a pod without POD_NAMESPACE (an older manifest), the Lease goes where the pod runs.
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
MIN_TRIM_SECONDS = 1.0  # each trim holds the event loop for a moment
# The HTTP clients log every request at INFO; that is for debug runs only.
QUIET_LOGGERS = ("httpx", "httpx2", "httpcore", "aiohttp.access")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="items-operator", description=__doc__)
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="Namespace (or Kopf glob) to serve; repeatable. Default: all namespaces.",
    )
    parser.add_argument(
        "--liveness",
        default=os.environ.get("ITEMS_OPERATOR_LIVENESS", "http://0.0.0.0:8080/healthz"),
        help="Kopf's liveness endpoint (healthy while the operator's loops run).",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("ITEMS_OPERATOR_METRICS_PORT", "9090")),
    )
    parser.add_argument(
        "--peering",
        default=os.environ.get("ITEMS_OPERATOR_PEERING", DEFAULT_PEERING),
        help="Kopf peering object; replicas with it are active one at a time.",
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="No Lease and no peering (one replica only, or local development).",
    )
    parser.add_argument(
        "--leader-election",
        action=argparse.BooleanOptionalAction,
        default=_env_flag("ITEMS_OPERATOR_LEADER_ELECTION", default=True),
        help="One writer through a coordination.k8s.io Lease in the operator's namespace "
        "(POD_NAMESPACE), Kopf peering off. --no-leader-election: Kopf peering alone.",
    )
    parser.add_argument(
        "--lease-name", default=os.environ.get("ITEMS_OPERATOR_LEASE_NAME", DEFAULT_LEASE)
    )
    parser.add_argument(
        "--lease-namespace",
        default=os.environ.get("POD_NAMESPACE", ""),
        help="Where the Lease lives; default $POD_NAMESPACE (the chart sets it).",
    )
    defaults = Timings()
    for flag, env, default in (
        ("--lease-duration", "ITEMS_OPERATOR_LEASE_DURATION", defaults.lease_duration),
        ("--renew-deadline", "ITEMS_OPERATOR_RENEW_DEADLINE", defaults.renew_deadline),
        ("--retry-period", "ITEMS_OPERATOR_RETRY_PERIOD", defaults.retry_period),
    ):
        parser.add_argument(flag, type=float, default=float(os.environ.get(env, default)))
    parser.add_argument(
        "--priority",
        type=int,
        default=None,
        help="Peering priority; default random, so each replica gets a distinct one.",
    )
    parser.add_argument(
        "--watch-owned",
        choices=("auto", "on", "off"),
        default=os.environ.get("ITEMS_OPERATOR_WATCH_OWNED", "auto"),
        help="Wake a reconcile on events of owned Jobs, Deployments and pods (reaction in "
        "~0.1 s instead of the next poll). Needs list/watch on them where the operator serves; "
        "auto: on with --namespace, off cluster-wide (per-namespace RoleBindings).",
    )
    parser.add_argument(
        "--cache-reads",
        choices=("auto", "on", "off"),
        default=os.environ.get("ITEMS_OPERATOR_CACHE_READS", "auto"),
        help="Read owned objects and Secrets from watch-fed caches instead of the API server "
        "(no request in steady state), and sleep ItemServices until a watch event, a deadline "
        "or the resync. Needs the owned-object watches and list/watch on Secrets "
        "(docs/operator.md); auto: on wherever the owned-object watches are.",
    )
    parser.add_argument(
        "--watch-timeout",
        type=float,
        default=float(os.environ.get("ITEMS_OPERATOR_WATCH_TIMEOUT", DEFAULT_WATCH_TIMEOUT)),
        help="Seconds a watch may deliver no event (bookmarks included) before it is closed and "
        "resumed: bounds how long a silent watch (a proxy that stopped forwarding) leaves the "
        "view stale. At least 10; below 70 each watch request also ends sooner server-side.",
    )
    parser.add_argument(
        "--resync-seconds",
        type=float,
        default=float(os.environ.get("ITEMS_OPERATOR_RESYNC_SECONDS", DEFAULT_RESYNC_SECONDS)),
        help="With --cache-reads on: the idle ItemService's safety-net pass, +-20%% jitter.",
    )
    parser.add_argument(
        "--pass-concurrency",
        type=int,
        default=int(os.environ.get("ITEMS_OPERATOR_PASS_CONCURRENCY", DEFAULT_CONCURRENCY)),
        help="With --cache-reads on: passes running at once (ItemServices in motion first).",
    )
    parser.add_argument(
        "--startup-rate",
        type=float,
        default=float(os.environ.get("ITEMS_OPERATOR_STARTUP_RATE", DEFAULT_STARTUP_RATE)),
        help="With --cache-reads on: first passes per second after a start.",
    )
    parser.add_argument(
        "--upgrade-wave",
        type=int,
        default=int(os.environ.get("ITEMS_OPERATOR_UPGRADE_WAVE", str(DEFAULT_WAVE_SIZE))),
        help="ItemServices rolling out at once a release only this operator version's rendering "
        "asked for (no spec change); the first rollback halts the wave.",
    )
    parser.add_argument(
        "--trim-seconds",
        type=float,
        default=float(os.environ.get("ITEMS_OPERATOR_TRIM_SECONDS", memory_report.TRIM_SECONDS)),
        help="Hand the heap's free pages back to the kernel (malloc_trim) this often; 0: never. "
        "Memory freed during rollouts otherwise stays resident (docs/operations.md).",
    )
    parser.add_argument("--log-level", default=os.environ.get("ITEMS_OPERATOR_LOG_LEVEL", "INFO"))
    parser.add_argument("--plain-logs", action="store_true", help="Human-readable, not JSON.")
    args = parser.parse_args(argv)
    if args.cache_reads == "on" and not watches_owned_objects(args):
        parser.error("--cache-reads on needs the owned-object watches (--watch-owned on)")
    if args.cache_reads == "on" and not plain_namespaces(args.namespace):
        parser.error(
            "--cache-reads on needs plain namespace names, not globs: its informers "
            "watch each served namespace (or, with no --namespace, all of them)"
        )
    trim = args.trim_seconds
    if not math.isfinite(trim) or (trim != 0 and trim < MIN_TRIM_SECONDS):
        parser.error(f"--trim-seconds must be 0 (never) or at least {MIN_TRIM_SECONDS:g}: {trim}")
    try:
        watch_timeouts(args.watch_timeout)
    except ValueError as error:
        parser.error(str(error))
    try:
        args.timings = Timings(args.lease_duration, args.renew_deadline, args.retry_period)
    except ValueError as error:
        parser.error(str(error))
    return args


def _env_flag(name: str, *, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def uses_lease(args: argparse.Namespace) -> bool:
    return bool(args.leader_election) and not args.standalone


def lease_config(args: argparse.Namespace) -> LeaseConfig | None:
    """The Lease to hold, or None; refuses to start without a namespace for it rather than
    run unfenced next to another replica."""
    if not uses_lease(args):
        return None
    namespace = args.lease_namespace
    if not namespace and SERVICE_ACCOUNT_NAMESPACE.is_file():
        namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    if not namespace:
        raise SystemExit(
            "items-operator: --leader-election needs --lease-namespace or $POD_NAMESPACE "
            "(or --standalone for a single replica)"
        )
    return LeaseConfig(
        name=args.lease_name,
        namespace=namespace,
        identity=holder_identity(os.environ.get("POD_NAME")),
        timings=args.timings,
    )


def watches_owned_objects(args: argparse.Namespace) -> bool:
    return args.watch_owned == "on" or (args.watch_owned == "auto" and bool(args.namespace))


def caches_permitted(args: argparse.Namespace) -> bool:
    """reads_from_caches, and for `auto` the RBAC allows them too (access.py): an operator
    upgraded before its role falls back to reading the API server instead of serving nothing."""
    from loguru import logger

    if not reads_from_caches(args):
        if args.cache_reads == "auto" and not plain_namespaces(args.namespace):
            logger.warning(
                "watch-fed caches off: the informers watch named namespaces, and --namespace "
                "has a glob; list the namespaces to have them (docs/operator.md)"
            )
        return False
    if args.cache_reads == "on":
        return True  # asked for: a refused watch is then the error to see

    try:
        missing = missing_secret_access(args.namespace or ())
    except Exception as error:  # the API unreachable at start: the safe mode, said why
        missing = f"the access review failed ({type(error).__name__}: {error})"
    if missing is None:
        return True
    logger.warning(
        "watch-fed caches off: the role does not allow {}; grant list/watch on Secrets "
        "(this version's chart and operator/rbac/ do) or pass --cache-reads off to silence this",
        missing,
    )
    return False


def reads_from_caches(args: argparse.Namespace) -> bool:
    """The caches are fed by the owned-object watches: without them (a cluster-wide operator
    with per-namespace RoleBindings) the passes read the API server and poll; so they do when
    the served namespaces are globs (the informers watch named namespaces)."""
    if args.cache_reads == "on":
        return True
    auto = args.cache_reads == "auto" and watches_owned_objects(args)
    return auto and plain_namespaces(args.namespace)


def plain_namespaces(namespaces: Sequence[str]) -> bool:
    return all(NAMESPACE_NAME.fullmatch(n) for n in namespaces)


def configure_logging(level: str = "INFO", *, plain: bool = False) -> None:
    """The operator's log policy on the shared JSON lines (items_logging): Kopf's and every
    other standard-library logger through the root logger, the HTTP clients quieter."""
    items_logging.configure_logging(level, json_lines=not plain, quiet=QUIET_LOGGERS)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    lease = lease_config(args)
    configure_logging(args.log_level, plain=args.plain_logs)
    start_http_server(args.metrics_port)
    memory_report.install()  # kill -USR1: a heap report (PYTHONTRACEMALLOC); -USR2: a trim

    from items_operator import handlers, wakeups  # registers the handlers with Kopf

    settings = kopf.OperatorSettings()
    memo = kopf.Memo(wave=UpgradeWave(size=max(args.upgrade_wave, 1)), lease=lease)
    apply_scanning(settings, args.namespace)
    handlers.set_watch_timeout(args.watch_timeout)
    handlers.set_trim_seconds(args.trim_seconds)
    if caches_permitted(args):  # the informers watch the owned kinds and wake the passes
        handlers.read_from_caches(
            resync=args.resync_seconds,
            concurrency=args.pass_concurrency,
            startup_rate=args.startup_rate,
            namespaces=args.namespace,
        )
    elif watches_owned_objects(args):
        wakeups.watch_owned_objects()

    # Kopf peering is priority-based, not a lease: replicas with equal priority all pause.
    # A random 31-bit priority makes a tie practically impossible; the highest one works.
    # With the Lease, peering is off (leadership.py says why) and every replica runs Kopf.
    without_peering = args.standalone or lease is not None
    priority = args.priority if args.priority is not None else random.randint(1, 2**31 - 1)
    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness,
        standalone=without_peering,
        peering_name=None if without_peering else args.peering,
        priority=priority,
        settings=settings,
        memo=memo,
    )


if __name__ == "__main__":
    main()
