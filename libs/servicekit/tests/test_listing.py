"""Lists through the read pool: a `PageQuery` read by `fetch_page` against a real PostgreSQL."""

import uuid
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from pydantic import BaseModel

from devstack.servers import PostgresServer
from servicekit.db import Database
from servicekit.listing import Page, PageQuery, contains_pattern, fetch_page

_metadata = sa.MetaData()
_word = sa.Table(
    f"word_{uuid.uuid4().hex[:8]}",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("text", sa.String(50), nullable=False),
    sa.Column("owner", sa.String(10), nullable=False),
)
_WORDS = ["apple", "banana", "cherry", "50%_off", "date", "elderberry"]

_BY_ID = (_word.c.id.asc(),)
_OWNED = _word.c.owner == sa.bindparam("owner")
_ALL = PageQuery(_word, order_by=_BY_ID)
_OWNED_MATCHING = PageQuery(
    _word,
    where=(_OWNED, _word.c.text.like(sa.bindparam("pattern"), escape="\\")),
    order_by=_BY_ID,
)
_LABELLED = PageQuery(
    _word,
    columns=(_word.c.text.label("word"), (_word.c.id == sa.bindparam("mine")).label("mine")),
    where=(_OWNED,),
    order_by=(_word.c.id.desc(),),
)


class Word(BaseModel):
    id: int
    text: str


class Words(Page[Word]):
    pass


class Labelled(BaseModel):
    word: str
    mine: bool


class LabelledWords(Page[Labelled]):
    pass


@pytest.fixture
async def database(postgres: PostgresServer) -> AsyncIterator[Database]:
    database = Database(postgres.dsn().replace("postgresql://", "postgresql+asyncpg://"))
    await database.open()
    async with database.engine.begin() as connection:
        await connection.run_sync(_metadata.create_all)
        await connection.execute(
            _word.insert(),
            [
                {"id": n, "text": text, "owner": "ann" if n % 2 else "bob"}
                for n, text in enumerate(_WORDS, start=1)
            ],
        )
    yield database
    async with database.engine.begin() as connection:
        await connection.run_sync(_metadata.drop_all)
    await database.dispose()


async def test_fetch_page_gives_one_page_and_the_total_of_every_match(
    database: Database,
) -> None:
    page = await fetch_page(database, _ALL, Words, limit=2, offset=3)

    assert page == Words(
        items=[Word(id=4, text="50%_off"), Word(id=5, text="date")], total=6, limit=2, offset=3
    )


async def test_fetch_page_past_the_end_is_empty_with_the_total(database: Database) -> None:
    page = await fetch_page(database, _ALL, Words, limit=20, offset=100)

    assert (page.items, page.total) == ([], 6)


async def test_page_query_filters_by_its_parameters_and_takes_the_pattern_literally(
    database: Database,
) -> None:
    ann_with_e = await fetch_page(
        database,
        _OWNED_MATCHING,
        Words,
        limit=20,
        offset=0,
        owner="ann",
        pattern=contains_pattern("e"),
    )
    percent = await fetch_page(
        database,
        _OWNED_MATCHING,
        Words,
        limit=20,
        offset=0,
        owner="bob",
        pattern=contains_pattern("%_"),
    )

    assert [word.text for word in ann_with_e.items] == ["apple", "cherry", "date"]
    assert ann_with_e.total == 3
    assert [word.text for word in percent.items] == ["50%_off"]


async def test_page_query_reads_labelled_columns(database: Database) -> None:
    page = await fetch_page(
        database, _LABELLED, LabelledWords, limit=2, offset=0, owner="bob", mine=4
    )

    assert page.items == [
        Labelled(word="elderberry", mine=False),
        Labelled(word="50%_off", mine=True),
    ]
    assert page.total == 3
