"""The images of the failure classes and of the false-rollback checks, built FROM v2 out of
tests/operator/cluster/images the way the bench builds the others (build_test_images), and
loaded into the cluster. The crash loops are the operator suite's own images (same tags); the
unpullable image is a tag no registry has (the local cluster's docker.io answers "not found")."""

from __future__ import annotations

from dataclasses import dataclass

from tests.e2e.platform import IMAGES_DIR, Images
from tests.operator.cluster.e2e import MISSING_IMAGE, build_test_images, node_digest

# Our own test images: never items-service:dev or items-operator:dev, which others rely on.
PREFIX = "bench14-"


def bench_tag(name: str) -> str:
    return f"{PREFIX}{name}:dev"


@dataclass(frozen=True)
class FaultImages:
    unpullable: str
    crashloop: str
    crash: str
    oom: str
    errors_5xx: str
    slow_start: str
    blip: str

    def for_class(self, name: str) -> str:
        return {
            "unpullable": self.unpullable,
            "crashloop": self.crashloop,
            "crash": self.crash,
            "oom": self.oom,
            "5xx": self.errors_5xx,
        }[name]

    @classmethod
    def build_and_load(cls, images: Images) -> FaultImages:
        repo = images.v1.rsplit(":", 1)[0]
        faults = cls(
            unpullable=MISSING_IMAGE,
            crashloop=f"{repo}:e2e-crashloop",
            crash=f"{repo}:e2e-crash",
            oom=bench_tag("oom"),
            errors_5xx=bench_tag("5xx"),
            slow_start=bench_tag("slow-start"),
            blip=bench_tag("blip"),
        )
        build_test_images(
            base=images.v1,
            folder=IMAGES_DIR,
            builds=[
                ("crashloop", faults.crashloop, images.v2),
                ("crash", faults.crash, images.v2),
                ("oom", faults.oom, images.v2),
                ("5xx", faults.errors_5xx, images.v2),
                ("slow-start", faults.slow_start, images.v2),
                ("blip", faults.blip, images.v2),
            ],
        )
        return faults


def digest_aliases(tags: list[str]) -> dict[str, str]:
    """repository@digest -> tag for each tag the node has (the operator serves a release by
    the digest its migration ran, tests/operator/cluster/e2e.py `runs`)."""
    aliases: dict[str, str] = {}
    for tag in tags:
        digest = node_digest(tag)
        if digest:
            aliases[f"{tag.rpartition(':')[0]}@{digest}"] = tag
    return aliases
