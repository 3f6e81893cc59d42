"""Test-only model (tests/operator/cluster/images, items-service:e2e-floor-v1 only).

Imported at the end of the image's service/models.py, it puts table e2e_legacy on the same
SQLModel metadata the service's models use, so `items-service migrate --plan` (and the
migration report) say this image uses e2e_legacy. The service itself never queries it.
"""

from sqlmodel import Field, SQLModel


class E2ELegacy(SQLModel, table=True):
    __tablename__ = "e2e_legacy"

    id: int | None = Field(default=None, primary_key=True)
    note: str | None = Field(default=None, max_length=64)
