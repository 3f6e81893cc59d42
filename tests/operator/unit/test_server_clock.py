"""The API server's clock from its Date header (kube_proxy.ServerClock)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import SimpleNamespace
from typing import Any

import httpx2 as httpx
import pytest
from items_operator.kube_proxy import ServerClock


def _client(skew: timedelta) -> Any:
    """A lightkube-shaped client whose server runs `skew` ahead and answers in whole seconds."""

    def answer(request: httpx.Request) -> httpx.Response:
        server = datetime.now(UTC) + skew
        return httpx.Response(200, headers={"date": format_datetime(server, usegmt=True)})

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="https://api")
    return SimpleNamespace(_client=SimpleNamespace(_client=http))


@pytest.mark.parametrize("skew_seconds", [0.0, 0.3, 0.7, -42.5, 3600.2])
def test_the_estimate_is_within_half_a_second_of_the_server_s_time(
    skew_seconds: float,
) -> None:
    """Date is truncated to its second: taking its middle keeps the error within +-0.5 s (a
    truncated reading was up to a second early, and every deadline as late)."""
    clock = ServerClock()
    skew = timedelta(seconds=skew_seconds)
    now = asyncio.run(clock.now(_client(skew)))
    assert abs((now - (datetime.now(UTC) + skew)).total_seconds()) <= 0.55
