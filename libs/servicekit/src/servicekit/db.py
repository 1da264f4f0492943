"""The async engine, the session dependency and the naming convention every schema shares."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

#: Deterministic constraint names, so Alembic can drop what it created.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Each service runs in its own process, so the shared SQLModel metadata holds only its tables.
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata: MetaData = SQLModel.metadata


class Database:
    """One engine and session factory per process, owned by the app's lifespan."""

    def __init__(self, url: str, *, pool_size: int = 10, connect_timeout: float = 5.0) -> None:
        self.engine: AsyncEngine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            # A restarted PostgreSQL leaves dead connections in the pool; test before use.
            pool_pre_ping=True,
            pool_timeout=connect_timeout,
            connect_args={"timeout": connect_timeout},
        )
        self.sessionmaker = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )

    async def dispose(self) -> None:
        await self.engine.dispose()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session per request; the view commits, anything unfinished is rolled back."""
    database: Database = request.app.state.database
    async with database.sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
