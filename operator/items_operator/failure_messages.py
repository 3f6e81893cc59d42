"""What the kubelet's and the runtime's messages say about a failure: will it heal by itself?

Image pull errors (ErrImagePull, ImagePullBackOff; since Kubernetes 1.32 the back-off message
carries the pull error too) are sorted into three kinds: the registry's answer is final (the
image or tag does not exist, the credentials are refused, the reference is malformed), the
registry or the network is having a bad moment (rate limits, 5xx, timeouts, refused or reset
connections), or the message says neither. Transient wins over permanent when both match: a
flaky registry must never block a release.

Container creation errors are sorted the same way: a reference to a Secret or ConfigMap that
does not exist is the environment (creating it heals the pod), a key missing from an existing
one, an image that runs as root under runAsNonRoot or a command the image does not have is the
release's own, a busy kubelet's timeout is neither.
"""

from __future__ import annotations

import enum
import re


class Healing(enum.Enum):
    PERMANENT = "permanent"  # waiting longer will not fix it: the release's own
    TRANSIENT = "transient"  # it heals by itself (or the environment does): never blamed
    MISSING_OBJECT = "missing-object"  # a Secret/ConfigMap to create: the environment's
    UNKNOWN = "unknown"  # the message does not say


_TRANSIENT_PULL = re.compile(
    r"too many requests|toomanyrequests|rate.?limit"
    r"|status(?: code)?:? *(?:429|5\d\d)\b|\b(?:429|5\d\d) +(?:too many|internal|bad gateway"
    r"|service unavailable|gateway time|not implemented|http version)"
    r"|internal server error|bad gateway|service unavailable|gateway time-?out"
    r"|i/o timeout|tls handshake timeout|timed? ?out|deadline exceeded"
    r"|connection refused|connection reset|broken pipe|unexpected eof|\beof\b"
    r"|network is unreachable|no route to host|temporary failure in name resolution"
    r"|server misbehaving|try again",
    re.IGNORECASE,
)
_PERMANENT_PULL = re.compile(
    r"manifest unknown|not found|notfound|name unknown|repository does not exist"
    r"|unauthorized|authentication required|no basic auth credentials|denied|forbidden"
    r"|invalid reference|invalid image name|couldn't parse image|failed to parse"
    r"|no match(?:ing)? manifest|does not match the specified platform|signature",
    re.IGNORECASE,
)
# Reasons whose name alone says the image cannot be had.
PERMANENT_PULL_REASONS = frozenset(
    {"InvalidImageName", "ErrImageNeverPull", "SignatureValidationFailed"}
)
TRANSIENT_PULL_REASONS = frozenset({"ErrRegistryUnavailable"})
PULL_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "ImageInspectError",
        *PERMANENT_PULL_REASONS,
        *TRANSIENT_PULL_REASONS,
    }
)
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")


def _without_references(message: str, image: str) -> str:
    """Image names and quoted references can contain anything (a tag `503`, a repo `denied`)."""
    if image:
        message = message.replace(image, " ")
    return _QUOTED.sub(" ", message)


def pull_healing(reason: str, message: str, image: str = "") -> Healing:
    if reason in PERMANENT_PULL_REASONS:
        return Healing.PERMANENT
    if reason in TRANSIENT_PULL_REASONS:
        return Healing.TRANSIENT
    text = _without_references(message, image)
    if _TRANSIENT_PULL.search(text):
        return Healing.TRANSIENT
    if _PERMANENT_PULL.search(text):
        return Healing.PERMANENT
    return Healing.UNKNOWN


CONFIG_REASONS = frozenset(
    {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
)
# A Secret or ConfigMap the pod references does not exist (`secret "x" not found`).
_MISSING_OBJECT = re.compile(r"\b(?:secrets?|configmaps?) +\"[^\"]+\" +not found", re.IGNORECASE)
# Busy kubelets and runtimes report these briefly, then retry on their own.
_TRANSIENT_KUBELET = re.compile(
    r"failed to sync (?:secret|configmap) cache|timed out waiting for the condition"
    r"|context deadline exceeded|is reserved for|resource temporarily unavailable|try again",
    re.IGNORECASE,
)
_PERMANENT_CONFIG = re.compile(
    r"couldn't find key|runasnonroot|non-numeric user|will run as root"
    r"|executable file not found|no such file or directory|permission denied"
    r"|exec format error|not a directory|invalid argument",
    re.IGNORECASE,
)


def config_healing(message: str) -> Healing:
    if _MISSING_OBJECT.search(message):
        return Healing.MISSING_OBJECT
    if _TRANSIENT_KUBELET.search(message):
        return Healing.TRANSIENT
    if _PERMANENT_CONFIG.search(message):
        return Healing.PERMANENT
    return Healing.UNKNOWN


# A run that ended this way failed to start the command at all (not the service's exit).
START_FAILURE_REASONS = frozenset({"StartError", "ContainerCannotRun"})


def start_failure_is_permanent(message: str) -> bool:
    return config_healing(message) is Healing.PERMANENT
