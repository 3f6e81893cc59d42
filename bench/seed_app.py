"""The seed-style implementation, kept as the baseline the service is measured against.

Written plainly the way the FastAPI/SQLModel tutorial does it: sync endpoints (run in the
thread pool), a Session per request from a dependency, the ORM for every statement, the
engine's default pool, PyMySQL. It reads and writes the same ``items`` table as the service.
Configured by BENCH_SEED_DATABASE_URL (a mysql+pymysql URL).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query
from sqlmodel import Field, Session, SQLModel, create_engine, select


def utcnow() -> datetime:
    return datetime.now(UTC)


class ItemBase(SQLModel):
    name: str = Field(max_length=255)
    description: str = Field(default="", max_length=2000)
    price: Decimal = Field(max_digits=12, decimal_places=2)
    in_stock: bool = True
    sku: str | None = Field(default=None, max_length=64)


class Item(ItemBase, table=True):
    __tablename__ = "items"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = 1


class ItemCreate(ItemBase):
    pass


class ItemPublic(ItemBase):
    id: int
    created_at: datetime
    updated_at: datetime
    version: int


class ItemUpdate(SQLModel):
    name: str | None = None
    description: str | None = None
    price: Decimal | None = None
    in_stock: bool | None = None
    sku: str | None = None


engine = create_engine(os.environ.get("BENCH_SEED_DATABASE_URL", "sqlite://"))


def get_session() -> Iterator[Session]:
    with Session(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

app = FastAPI()


@app.post("/items/", response_model=ItemPublic, status_code=201)
def create_item(item: ItemCreate, session: SessionDep) -> Item:
    db_item = Item.model_validate(item)
    session.add(db_item)
    session.commit()
    session.refresh(db_item)
    return db_item


@app.get("/items/", response_model=list[ItemPublic])
def read_items(
    session: SessionDep, offset: int = 0, limit: Annotated[int, Query(le=100)] = 100
) -> list[Item]:
    return list(session.exec(select(Item).offset(offset).limit(limit)).all())


@app.get("/items/{item_id}", response_model=ItemPublic)
def read_item(item_id: int, session: SessionDep) -> Item:
    item = session.get(Item, item_id)
    if not item:
        raise HTTPException(status_code=404, detail="Item not found")
    return item


@app.patch("/items/{item_id}", response_model=ItemPublic)
def update_item(item_id: int, item: ItemUpdate, session: SessionDep) -> Item:
    db_item = session.get(Item, item_id)
    if not db_item:
        raise HTTPException(status_code=404, detail="Item not found")
    db_item.sqlmodel_update(item.model_dump(exclude_unset=True))
    db_item.updated_at = utcnow()
    db_item.version += 1
    session.add(db_item)
    session.commit()
    session.refresh(db_item)
    return db_item
