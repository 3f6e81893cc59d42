"""Names shared by the builders, the decision layer and the handlers."""

from typing import Final

GROUP: Final = "items.platform.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "ItemService"
PLURAL: Final = "itemservices"

FIELD_MANAGER: Final = "items-operator"
APP_NAME: Final = "items-service"
CONTAINER_NAME: Final = "items-service"
HTTP_PORT: Final = 8000
SERVICE_UID: Final = 10001

COMPONENT_SERVER: Final = "server"
COMPONENT_MIGRATION: Final = "migration"

LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_IMAGE_HASH: Final = f"{GROUP}/image-hash"
# The release (pod template) a Deployment template, a pod or a ControllerRevision belongs to.
LABEL_RELEASE: Final = f"{GROUP}/release"
# What a migration Job migrated: image + database target, hashed (see release.migration_key).
LABEL_MIGRATION_KEY: Final = f"{GROUP}/migration-key"

# Hash of the desired object, so a steady-state pass can skip the write entirely.
ANNOTATION_DESIRED_HASH: Final = f"{GROUP}/desired-hash"
ANNOTATION_IMAGE: Final = f"{GROUP}/image"
# Written on the Deployment in the same request as a rollback, so the "do not retry this image"
# memory survives a lost status patch.
ANNOTATION_ROLLED_BACK_RELEASE: Final = f"{GROUP}/rolled-back-release"
# Set by a person on the ItemService: serve this stored revision number instead of the spec's.
ANNOTATION_ROLLBACK_TO: Final = f"{GROUP}/rollback-to"
# On a ControllerRevision: the release's image and migration key, readable without decoding data.
ANNOTATION_RELEASE_IMAGE: Final = f"{GROUP}/release-image"
# On a release's pod template: a digest of the database URL, so a new target is a new release.
ANNOTATION_DATABASE_TARGET: Final = f"{GROUP}/database-target"

# Why the operator ended a migration Job early (its pod could not even start).
ANNOTATION_FAILURE: Final = f"{GROUP}/failure"
# On a finished migration Job (copied from its pod when the operator adopts it) and on the
# ControllerRevision of each release it migrated: the image ID the container ran (a repository
# digest when the runtime knows one) and the migrator's report (schema head, uses, removed).
ANNOTATION_IMAGE_ID: Final = f"{GROUP}/image-id"
ANNOTATION_MIGRATION_REPORT: Final = f"{GROUP}/migration-report"
# On a migration Job: a digest of what it was told to protect (rollback target, serving release,
# allowed contract revisions); a blocked Job whose digest is stale is retried.
ANNOTATION_PROTECT_DIGEST: Final = f"{GROUP}/protect-digest"
# Set by a person on the ItemService: contract revisions allowed although the floor forbids them.
ANNOTATION_ALLOW_CONTRACT: Final = f"{GROUP}/allow-contract"
# Migration Jobs are created without an ownerReference (deleting the ItemService must not kill
# a migration mid-DDL) and adopted once finished; an orphan is collected this long after it ends.
ORPHAN_JOB_TTL_SECONDS: Final = 24 * 3600
MIGRATION_EXIT_BLOCKED: Final = 3
MIGRATION_PROTECT_ENV: Final = "ITEMS_MIGRATION_PROTECT"
MIGRATION_ALLOW_CONTRACT_ENV: Final = "ITEMS_MIGRATION_ALLOW_CONTRACT"
MIGRATION_REPORT_FILE_ENV: Final = "ITEMS_MIGRATION_REPORT_FILE"
TERMINATION_LOG: Final = "/dev/termination-log"
JOB_NAME_LABELS: Final = ("batch.kubernetes.io/job-name", "job-name")

DATABASE_URL_ENV: Final = "DATABASE_URL"
DATABASE_URL_FILE_ENV: Final = "DATABASE_URL_FILE"
DATABASE_SECRET_MOUNT: Final = "/var/run/secrets/items"  # noqa: S105 - a path, not a secret
DATABASE_SECRET_FILE: Final = "database-url"  # noqa: S105 - a file name
