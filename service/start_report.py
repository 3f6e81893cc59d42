"""What `items-service serve` says when it exits at start for a reason no restart heals.

An invalid argument (the container's command) or an invalid setting (its environment, a
Secret's content) fails every start the same way until the spec or the Secret changes. A
file that cannot be read, or a tokens file without a token, is not reported: a volume
injected late may heal it by the next start. The kubelet only learns the exit code, and
the operator would need two runs with the same code to call it a crash loop. Under a kubelet,
the service writes one JSON object to the container's termination log before it exits:
`{"startFailure": "InvalidArguments" | "InvalidConfiguration", "detail": "..."}`. The kubelet
puts it in `state.terminated.message`, where the operator reads it at the first exit
(operator/items_operator/containers.py). Outside Kubernetes the file does not exist and
nothing is written; the message on stderr is the same either way.
"""

from __future__ import annotations

import json
import os
import sys

TERMINATION_LOG_ENV = "ITEMS_TERMINATION_LOG"
# Where the kubelet mounts the termination log (terminationMessagePath's default).
TERMINATION_LOG = "/dev/termination-log"
INVALID_ARGUMENTS = "InvalidArguments"
INVALID_CONFIGURATION = "InvalidConfiguration"
# The kubelet keeps 4096 bytes of a termination message: the detail is cut so that even
# all-escaped JSON (\uXXXX: 6 bytes a character) stays below that, and parses.
DETAIL_LIMIT = 600


def report_start_failure(reason: str, detail: str) -> None:
    """Write the report where the kubelet reads it, if the service runs under one."""
    path = os.environ.get(TERMINATION_LOG_ENV, TERMINATION_LOG)
    if not path or not os.path.exists(path):
        return  # not under a kubelet: creating a file in /dev would help nobody
    report = {"startFailure": reason, "detail": detail.strip()[:DETAIL_LIMIT]}
    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(json.dumps(report, separators=(",", ":")))
    except OSError as exc:
        print(f"could not write the start report to {path}: {exc}", file=sys.stderr)
