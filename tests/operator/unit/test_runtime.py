"""The thin runtime pieces that need no cluster: CLI flags, Kopf settings, JSON logging."""

from __future__ import annotations

import json
import logging

import kopf
import pytest
from items_operator.election import Timings
from items_operator.kopf_settings import apply_scanning, apply_settings, watch_timeouts
from items_operator.main import (
    configure_logging,
    lease_config,
    parse_args,
    uses_lease,
    watches_owned_objects,
)


def test_cli_defaults_serve_all_namespaces_with_the_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "items-system")
    monkeypatch.setenv("POD_NAME", "items-operator-7d9f-abcde")
    args = parse_args([])
    assert args.namespace == []
    assert args.liveness == "http://0.0.0.0:8080/healthz"
    assert args.metrics_port == 9090
    assert args.peering == "items-operator"
    assert not args.standalone
    assert args.priority is None
    lease = lease_config(args)
    assert lease is not None
    assert (lease.name, lease.namespace) == ("items-operator", "items-system")
    assert lease.identity.startswith("items-operator-7d9f-abcde-")
    assert lease_config(parse_args([])) != lease  # a random suffix per process
    assert lease.timings == Timings(15, 10, 2)
    # Cluster-wide with per-namespace RoleBindings: watches of owned kinds would be refused.
    assert not watches_owned_objects(args)


def test_owned_objects_are_watched_where_the_rbac_allows_it() -> None:
    assert watches_owned_objects(parse_args(["--namespace", "a"]))
    assert watches_owned_objects(parse_args(["--watch-owned", "on"]))
    assert not watches_owned_objects(parse_args(["--namespace", "a", "--watch-owned", "off"]))


def test_leader_election_is_a_flag_and_standalone_means_neither(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    assert not uses_lease(parse_args(["--standalone"]))
    assert not uses_lease(parse_args(["--no-leader-election"]))  # Kopf peering alone
    monkeypatch.setenv("ITEMS_OPERATOR_LEADER_ELECTION", "false")
    assert not uses_lease(parse_args([]))
    monkeypatch.setenv("ITEMS_OPERATOR_LEADER_ELECTION", "true")
    monkeypatch.setenv("ITEMS_OPERATOR_RENEW_DEADLINE", "4")
    args = parse_args(["--lease-namespace", "ops", "--lease-duration", "6", "--retry-period", "1"])
    assert uses_lease(args)
    assert args.timings == Timings(6, 4, 1)


def test_cli_namespaces_and_standalone() -> None:
    args = parse_args(["--namespace", "a", "--namespace", "b", "--standalone", "--priority", "7"])
    assert args.namespace == ["a", "b"]
    assert args.standalone
    assert args.priority == 7


def test_kopf_settings_keep_status_clean_and_watches_alive() -> None:
    settings = kopf.OperatorSettings()
    apply_settings(settings)
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert isinstance(settings.persistence.diffbase_storage, kopf.AnnotationsDiffBaseStorage)
    assert settings.persistence.finalizer == "items.platform.dev/operator"
    assert settings.watching.server_timeout is not None
    assert settings.watching.client_timeout is not None
    assert settings.watching.client_timeout > settings.watching.server_timeout
    assert settings.peering.clusterwide
    assert settings.watching.chunk_size is None  # a 410 on a continue token kills a watcher
    assert settings.queueing.idle_timeout == 0.5  # a worker drops its object's body soon
    # Unchanged defaults: Kopf's 70 s inactivity timeout, the server ends requests at 270 s.
    assert settings.watching.inactivity_timeout == 70
    assert (settings.watching.server_timeout, settings.watching.client_timeout) == (270, 300)


@pytest.mark.parametrize("seconds", [10.0, 20.0, 30.5, 69.0, 70.0, 300.0])
def test_a_healthy_quiet_watch_never_trips_the_watch_timeout(seconds: float) -> None:
    """Kopf's timer restarts with each request: a healthy watch is silent no longer than until
    its next bookmark (about a minute) or the server's end of the request (timeoutSeconds)."""
    watch = watch_timeouts(seconds)
    assert isinstance(watch.server, int)  # timeoutSeconds is an integer on the wire
    assert watch.inactivity >= 60 + 10 or watch.server < watch.inactivity
    assert watch.server < watch.client
    settings = kopf.OperatorSettings()
    apply_settings(settings, watch)
    assert settings.watching.inactivity_timeout == seconds


@pytest.mark.parametrize("value", ["9", "0", "-5", "nan", "inf"])
def test_the_watch_timeout_is_validated(value: str) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--watch-timeout", value])


def test_the_watch_timeout_flag_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_args([]).watch_timeout == 70
    assert parse_args(["--watch-timeout", "20"]).watch_timeout == 20
    monkeypatch.setenv("ITEMS_OPERATOR_WATCH_TIMEOUT", "25")
    assert parse_args([]).watch_timeout == 25


@pytest.mark.parametrize(
    ("namespaces", "disabled"),
    [
        ([], False),  # cluster-wide: Kopf lists no namespaces anyway
        (["items", "shop-2"], True),  # plain names: no namespace list/watch needed
        (["items-*"], False),  # a glob needs the namespace watch
        (["!kube-system"], False),
    ],
)
def test_scanning_is_off_only_for_plain_namespace_names(
    namespaces: list[str], disabled: bool
) -> None:
    settings = kopf.OperatorSettings()
    apply_scanning(settings, namespaces)
    assert settings.scanning.disabled is disabled


@pytest.mark.usefixtures("restore_logging")
def test_stdlib_logging_becomes_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    logging.getLogger("kopf.objects").info("hello %s", "world")
    line = capsys.readouterr().out.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["message"] == "hello world"
    assert record["level"] == "INFO"
    assert record["logger"] == "kopf.objects"
    assert record["time"].startswith("20")


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "0.001"])
def test_the_trim_interval_is_validated(value: str) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--trim-seconds", value])


def test_caches_need_plain_namespace_names() -> None:
    from items_operator.main import reads_from_caches

    assert reads_from_caches(parse_args(["--namespace", "shop"]))
    assert not reads_from_caches(parse_args(["--namespace", "shop-*"]))  # auto: off, said why
    with pytest.raises(SystemExit):
        parse_args(["--namespace", "shop-*", "--cache-reads", "on"])
    assert parse_args(["--trim-seconds", "0"]).trim_seconds == 0.0  # never
