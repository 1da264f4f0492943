"""Failed-login throttling per account and per client address, counted in Redis."""

from redis.asyncio import Redis

from auth.settings import settings
from servicekit.errors import TooManyRequests


def _keys(email: str, address: str) -> tuple[str, str]:
    return f"login-failures:account:{email}", f"login-failures:address:{address}"


async def claim_login_attempt(redis: Redis, *, email: str, address: str) -> None:
    """Count the attempt as a failure before its password is checked (slow), and refuse it
    past the limits; `forgive_login_attempt` takes it back if the password was right.

    Counted first, so guesses sent together cannot all pass a check made before the
    first of them failed.
    """
    async with redis.pipeline(transaction=True) as pipe:
        for key in _keys(email, address):
            pipe.incr(key)
            # The window starts at the first failure and is not extended by later ones.
            pipe.expire(key, settings.LOGIN_FAILURE_WINDOW, nx=True)
            pipe.ttl(key)
        account_count, _, account_ttl, address_count, _, address_ttl = await pipe.execute()
    retry_after = 0
    if account_count > settings.LOGIN_MAX_FAILURES_PER_ACCOUNT:
        retry_after = max(retry_after, account_ttl, 1)
    if address_count > settings.LOGIN_MAX_FAILURES_PER_ADDRESS:
        retry_after = max(retry_after, address_ttl, 1)
    if retry_after:
        raise TooManyRequests(retry_after, "Too many failed logins; try again later")


#: Uncount one attempt, unless its window has ended meanwhile (a DECR would then leave -1).
_UNCOUNT = "if redis.call('exists', KEYS[1]) == 1 then redis.call('decr', KEYS[1]) end"


async def forgive_login_attempt(redis: Redis, *, email: str, address: str) -> None:
    """The password was right: the account's failures are cleared, the attempt uncounted."""
    account_key, address_key = _keys(email, address)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(account_key)
        pipe.eval(_UNCOUNT, 1, address_key)
        await pipe.execute()


async def claim_mail_slot(redis: Redis, *, purpose: str, user_id: str) -> bool:
    """At most one verification or reset mail per interval and account."""
    key = f"mail-request:{purpose}:{user_id}"
    return bool(await redis.set(key, "1", nx=True, ex=settings.MAIL_REQUEST_INTERVAL))


async def mail_slot_retry_after(redis: Redis, *, purpose: str, user_id: str) -> int:
    return max(1, int(await redis.ttl(f"mail-request:{purpose}:{user_id}")))
