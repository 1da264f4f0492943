"""Failed-login throttling per account and per client address, counted in Redis."""

from redis.asyncio import Redis

from auth.settings import settings
from servicekit.errors import TooManyRequests


def _keys(email: str, address: str) -> tuple[str, str]:
    return f"login-failures:account:{email}", f"login-failures:address:{address}"


async def ensure_login_allowed(redis: Redis, *, email: str, address: str) -> None:
    """Refuse before checking the password, so a locked account costs no hashing."""
    account_key, address_key = _keys(email, address)
    async with redis.pipeline(transaction=False) as pipe:
        for key in (account_key, address_key):
            pipe.get(key)
            pipe.ttl(key)
        account_count, account_ttl, address_count, address_ttl = await pipe.execute()
    retry_after = 0
    if int(account_count or 0) >= settings.LOGIN_MAX_FAILURES_PER_ACCOUNT:
        retry_after = max(retry_after, account_ttl, 1)
    if int(address_count or 0) >= settings.LOGIN_MAX_FAILURES_PER_ADDRESS:
        retry_after = max(retry_after, address_ttl, 1)
    if retry_after:
        raise TooManyRequests(retry_after, "Too many failed logins; try again later")


async def record_login_failure(redis: Redis, *, email: str, address: str) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        for key in _keys(email, address):
            # The window starts at the first failure and is not extended by later ones.
            pipe.incr(key)
            pipe.expire(key, settings.LOGIN_FAILURE_WINDOW, nx=True)
        await pipe.execute()


async def clear_account_failures(redis: Redis, *, email: str) -> None:
    await redis.delete(_keys(email, "")[0])


async def claim_mail_slot(redis: Redis, *, purpose: str, user_id: str) -> bool:
    """At most one verification or reset mail per interval and account."""
    key = f"mail-request:{purpose}:{user_id}"
    return bool(await redis.set(key, "1", nx=True, ex=settings.MAIL_REQUEST_INTERVAL))


async def mail_slot_retry_after(redis: Redis, *, purpose: str, user_id: str) -> int:
    return max(1, int(await redis.ttl(f"mail-request:{purpose}:{user_id}")))
