"""How a pass's writes go out: the precondition a change of the Deployment carries, the verb and
target each is logged and counted under, and how a refusal is recorded (status.refusedWrites)
and, for a refused read or status write, shown on the ItemService."""

from __future__ import annotations

import contextlib

import kopf
from lightkube import ApiError, AsyncClient

from items_operator import kube
from items_operator.observe import Observed
from items_operator.plan import Action, AdoptJob, Apply, Create, Delete, FailJob
from items_operator.rejections import Rejection, classify


async def report_rejection(
    client: AsyncClient, name: str, namespace: str, body: kopf.Body, error: ApiError
) -> None:
    """Make a refused read or status write visible on the ItemService (RBAC missing, ...)."""
    rejection = classify(error, namespace=namespace)
    if rejection.transient or error.status.code == 404:
        return  # retried quietly
    message = f"the API server refused a request ({rejection.refusal}): {rejection.message}"
    status = body.get("status") or {}
    if status.get("message") == message:
        return
    kopf.warn(body, reason=str(rejection.refusal), message=message)
    with contextlib.suppress(ApiError):
        await kube.patch_status(client, name, namespace, {"message": message})


def with_precondition(action: Action, observed: Observed) -> Action:
    """A change of the Deployment applies only to the Deployment this pass read, so a stale
    leader cannot undo a rollback made since (409); its status churns during a rollout, which
    costs a re-decided pass now and then. Other objects are created once by name or are not
    worth the churn."""
    if not (isinstance(action, Apply) and action.kind == "Deployment"):
        return action
    version = observed.versions.get(("Deployment", action.name))
    return action.on_version(version) if version is not None else action


def refusal_entry(kind: str, name: str, rejection: Rejection) -> dict[str, str]:
    return {
        "object": f"{kind}/{name}",
        "reason": str(rejection.refusal),
        "message": rejection.message[:500],
    }


def verb_and_target(action: Action) -> tuple[str, str, str]:
    match action:
        case Apply():
            return "apply", action.kind, action.name
        case Create():
            return "create", action.kind, action.name
        case FailJob():
            return "fail", "Job", action.name
        case AdoptJob():
            return "adopt", "Job", action.name
        case Delete():
            return "delete", action.kind, action.name
