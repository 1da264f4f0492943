"""Argon2id password hashing, always off the event loop."""

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from starlette.concurrency import run_in_threadpool

from auth.settings import settings


@lru_cache
def _hasher() -> PasswordHasher:
    return PasswordHasher(
        memory_cost=settings.PASSWORD_HASH_MEMORY_KIB,
        time_cost=settings.PASSWORD_HASH_TIME_COST,
        parallelism=settings.PASSWORD_HASH_PARALLELISM,
    )


@lru_cache
def _dummy_hash() -> str:
    return _hasher().hash("a password nobody has")


async def hash_password(password: str) -> str:
    return await run_in_threadpool(_hasher().hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Without an account, verify against a dummy hash so timing does not reveal it."""
    if password_hash is None:
        # _dummy_hash() inside the thread too: its first call hashes, which would block the loop.
        await run_in_threadpool(lambda: _verify(_dummy_hash(), password))
        return False
    return await run_in_threadpool(_verify, password_hash, password)


def needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)
