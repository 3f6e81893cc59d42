"""Name a refused request for the person on call: missing RBAC, a quota, an admission webhook or
policy, an invalid object, or something transient that is simply retried."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from lightkube import ApiError


class Refusal(enum.StrEnum):
    FOREIGN = "ObjectConflict"
    RBAC = "Forbidden"
    QUOTA = "QuotaExceeded"
    ADMISSION = "AdmissionDenied"
    INVALID = "Invalid"
    CONFLICT = "Conflict"
    TRANSIENT = "Transient"


@dataclass(frozen=True)
class Rejection:
    refusal: Refusal
    message: str

    @property
    def transient(self) -> bool:
        return self.refusal in (Refusal.TRANSIENT, Refusal.CONFLICT)


def classify(error: Exception, *, namespace: str) -> Rejection:
    if not isinstance(error, ApiError):  # kube.ForeignObjectError: someone else's object
        return Rejection(Refusal.FOREIGN, str(error))
    code = error.status.code or 0
    text = error.status.message or ""
    lowered = text.lower()
    if code == 403 and "exceeded quota" in lowered:
        return Rejection(Refusal.QUOTA, f"{text}: raise the ResourceQuota or lower the request")
    if (
        "admission webhook" in lowered
        or "denied the request" in lowered
        or (
            code == 403
            and ("violates podsecurity" in lowered or "validatingadmissionpolic" in lowered)
        )
    ):
        return Rejection(Refusal.ADMISSION, f"{text}: an admission policy refused the object")
    if code == 403:
        return Rejection(
            Refusal.RBAC,
            f"{text}: bind ClusterRole items-operator-workloads in namespace {namespace}",
        )
    if code == 422 or code == 400:
        return Rejection(Refusal.INVALID, text)
    if code == 409:
        return Rejection(Refusal.CONFLICT, text)
    return Rejection(Refusal.TRANSIENT, text or f"HTTP {code}")
