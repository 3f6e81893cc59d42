"""The in-cluster REST client of every episode: a pod of the service image running a bounded
python3 loop against the workload's Service by DNS name (kube-proxy, real endpoints), counting
successes and failures per wall-clock second so errors can be put on the episode's timeline."""

from __future__ import annotations

from typing import Any

from tests.cluster.kube_support import Kubectl
from tests.e2e.platform import ClientLoop, client_pod

# Creates one item, then GETs it, every fifth request a POST; at most 10 requests a second, each
# with a 5 s timeout.
# Stops when /tmp/stop exists or after DEADLINE seconds; prints "client: started" after the first
# success and, at the end, "client-result {json}" with per-second [ok, failed] buckets.
SCRIPT = r"""
import json, os, time, urllib.error, urllib.request
base = os.environ["BASE"]
deadline = time.monotonic() + float(os.environ["DEADLINE"])
buckets, errors, started = {}, [], False
counts = {"ok": 0, "failed": 0, "requests": 0}
def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:200].decode(errors="replace")
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"
item = None
while item is None and time.monotonic() < deadline and not os.path.exists("/tmp/stop"):
    status, text = call("POST", "/items/", {"name": "bench reference item", "price": 1.5})
    if status == 201:
        item = json.loads(text)["id"]
    else:
        time.sleep(0.5)
while item is not None and time.monotonic() < deadline and not os.path.exists("/tmp/stop"):
    n = counts["requests"]
    if n % 5 == 4:
        status, detail = call("POST", "/items/", {"name": f"bench {n}", "price": 2.5})
        wanted = 201
    else:
        status, detail = call("GET", f"/items/{item}")
        wanted = 200
    second = str(int(time.time()))
    bucket = buckets.setdefault(second, [0, 0])
    counts["requests"] += 1
    if status == wanted:
        counts["ok"] += 1
        bucket[0] += 1
        if not started:
            started = True
            print("client: started", flush=True)
    elif started:
        counts["failed"] += 1
        bucket[1] += 1
        if len(errors) < 20:
            errors.append({"t": round(time.time(), 2), "status": status, "detail": detail})
    time.sleep(0.1)
counts.update(buckets=buckets, errors=errors, stopped=os.path.exists("/tmp/stop"),
              started=started)
print("client-result " + json.dumps(counts), flush=True)
"""


def client(kube: Kubectl, workload: str, image: str, deadline: float) -> ClientLoop:
    name = f"client-{workload}"
    url = f"http://{workload}.{kube.namespace}.svc.cluster.local:80"
    pod = client_pod(name, image, url, 0, deadline)
    pod["spec"]["containers"][0]["command"] = ["python3", "-u", "-c", SCRIPT]
    pod["metadata"]["labels"] = {"app": "bench-client"}
    return ClientLoop(kube, name, pod)


def failures_between(result: dict[str, Any], start: float, end: float) -> tuple[int, int]:
    """(failed, total) requests the client counted in [start, end] (whole seconds)."""
    failed = total = 0
    for second, (ok, bad) in result.get("buckets", {}).items():
        if int(start) <= int(second) <= int(end):
            failed += bad
            total += ok + bad
    return failed, total
