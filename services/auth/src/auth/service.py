"""Business rules of the auth service: one function per operation, the routes' and start-up's.

Reads that only answer (`current_account`, the lists) go through the read pool and return
the API schemas; everything that changes an account or a session goes through the session.

Revocation is written to Redis *before* the database commits: if Redis is down the
request fails with 503 and changes nothing; if the commit fails afterwards, the
tokens are merely revoked early, which is the safe side.

Logins, refreshes, mailed one-time tokens and credential changes of one account are
ordered by a lock on its row (`_lock_account`), taken after their slow step (Argon2)
and held until they commit; they act only on what they read under it. A change that
locks after a login committed ends that login's session; a login that locks after a
change committed finds the account's `credentials_version` moved on and mints nothing.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from auth import passwords, revocations, throttle
from auth.keyring import Keyring
from auth.models import (
    Account,
    AccountAdminUpdate,
    AccountCreate,
    AccountList,
    AccountPublic,
    LoginSession,
    OneTimeToken,
    Role,
    SessionList,
    TokenPair,
    TokenPurpose,
)
from auth.settings import settings
from auth.tokens import mint_pair, new_one_time_token, sha256
from servicekit.auth import InvalidToken, Principal, TokenVerifier, principal_from_claims
from servicekit.db import Database, ReadQuery
from servicekit.errors import BadRequest, Conflict, NotFound, TooManyRequests, Unauthorized
from servicekit.events.outbox import add_event
from servicekit.listing import PageQuery, contains_pattern, fetch_page
from servicekit.revocation import RevocationChecks
from servicekit.timestamps import utcnow

logger = logging.getLogger(__name__)

PRODUCER = "auth"
INVALID_CREDENTIALS = "Incorrect email or password"
WRONG_CURRENT_PASSWORD = "Current password is incorrect"


# ---- accounts -----------------------------------------------------------------------------


def _public(account: Account) -> AccountPublic:
    return AccountPublic.model_validate(account, from_attributes=True)


async def _save(session: AsyncSession, account: Account) -> AccountPublic:
    """Commit the changes made to `account`, stamped with the time they were made."""
    account.updated_at = utcnow()
    session.add(account)
    await session.commit()
    return _public(account)


async def get_account(*, session: AsyncSession, account_id: uuid.UUID) -> Account | None:
    return await session.get(Account, account_id)


async def get_account_by_email(*, session: AsyncSession, email: str) -> Account | None:
    result = await session.exec(select(Account).where(Account.email == email.lower()))
    return result.first()


async def _lock_account(*, session: AsyncSession, account_id: uuid.UUID) -> Account | None:
    """The account as committed now, locked until this transaction ends (None: deleted)."""
    result = await session.exec(
        select(Account)
        .where(col(Account.id) == account_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return result.first()


async def _issue_one_time_token(
    *, session: AsyncSession, user_id: uuid.UUID, purpose: TokenPurpose, ttl: int
) -> str:
    token = new_one_time_token()
    session.add(
        OneTimeToken(
            user_id=user_id,
            purpose=purpose.value,
            token_hash=sha256(token),
            expires_at=utcnow() + timedelta(seconds=ttl),
        )
    )
    return token


async def _add_account(
    *,
    session: AsyncSession,
    email: str,
    password: str,
    full_name: str | None,
    is_verified: bool = False,
    roles: tuple[Role, ...] = (Role.USER,),
) -> Account:
    """Stage an account and its `user.registered` event (with a verification token if needed)."""
    account = Account(
        email=email,
        password_hash=await passwords.hash_password(password),
        full_name=full_name or None,
        is_verified=is_verified,
        roles=[role.value for role in roles],
    )
    session.add(account)
    token = None
    if not is_verified:
        token = await _issue_one_time_token(
            session=session,
            user_id=account.id,
            purpose=TokenPurpose.VERIFY_EMAIL,
            ttl=settings.VERIFICATION_TOKEN_TTL,
        )
    add_event(
        session,
        type="user.registered",
        producer=PRODUCER,
        data={
            "user_id": str(account.id),
            "email": account.email,
            "full_name": account.full_name,
            "verification_token": token,
        },
        aggregate=str(account.id),
    )
    return account


async def register(*, session: AsyncSession, account_in: AccountCreate) -> AccountPublic:
    """Create an account and announce it with its verification token, in one transaction."""
    if await get_account_by_email(session=session, email=account_in.email):
        raise Conflict("An account with this email already exists")
    account = await _add_account(
        session=session,
        email=account_in.email,
        password=account_in.password,
        full_name=account_in.full_name,
    )
    try:
        await session.commit()
    except IntegrityError:
        # Two registrations raced; the unique index let exactly one through.
        await session.rollback()
        raise Conflict("An account with this email already exists") from None
    return _public(account)


async def ensure_first_admin(*, session: AsyncSession, email: str, password: str) -> None:
    """Idempotent: several replicas may start at once, the unique index keeps one admin."""
    email = email.strip().lower()
    if await get_account_by_email(session=session, email=email):
        return
    await _add_account(
        session=session,
        email=email,
        password=password,
        full_name="Administrator",
        is_verified=True,
        roles=(Role.USER, Role.ADMIN),
    )
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()


_NEWEST_FIRST = (col(Account.created_at).desc(), col(Account.id).asc())
_ALL_ACCOUNTS = PageQuery(Account, order_by=_NEWEST_FIRST)
_ACCOUNTS_MATCHING = PageQuery(
    Account,
    where=(col(Account.email).like(sa.bindparam("pattern"), escape="\\"),),
    order_by=_NEWEST_FIRST,
)


async def list_accounts(
    *, database: Database, q: str | None, limit: int, offset: int
) -> AccountList:
    """A page of every account, newest first; `q`: those whose email contains it."""
    query = _ACCOUNTS_MATCHING if q else _ALL_ACCOUNTS
    pattern = contains_pattern(q.lower()) if q else None
    return await fetch_page(
        database, query, AccountList, limit=limit, offset=offset, pattern=pattern
    )


async def update_account(
    *,
    session: AsyncSession,
    redis: Redis,
    admin: Principal,
    account_id: uuid.UUID,
    changes: AccountAdminUpdate,
) -> AccountPublic:
    """Roles and activation; both end the account's current tokens (roles live in tokens)."""
    account = await _lock_account(session=session, account_id=account_id)
    if account is None:
        raise NotFound("Account not found")
    if account.id == admin.user_id and (
        changes.is_active is False
        or (changes.roles is not None and Role.ADMIN not in changes.roles)
    ):
        raise BadRequest("You cannot deactivate yourself or remove your own admin role")
    new_roles = sorted({role.value for role in changes.roles}) if changes.roles else account.roles
    new_active = account.is_active if changes.is_active is None else changes.is_active
    if new_roles != sorted(account.roles) or new_active != account.is_active:
        await _end_credentials(session=session, redis=redis, account=account)
        account.roles = new_roles
        account.is_active = new_active
        return await _save(session, account)
    return _public(account)


async def delete_account(
    *, session: AsyncSession, redis: Redis, caller: Principal, password: str
) -> None:
    """Erase the account at once; other services erase their data on `user.deleted`."""
    verified = await _verify_current_password(session=session, caller=caller, password=password)
    account = await _lock_unchanged_account(session=session, caller=caller, verified_hash=verified)
    await _end_credentials(session=session, redis=redis, account=account)
    await session.delete(account)
    add_event(
        session,
        type="user.deleted",
        producer=PRODUCER,
        data={"user_id": str(account.id)},
        aggregate=str(account.id),
    )
    await session.commit()


async def _verify_current_password(
    *, session: AsyncSession, caller: Principal, password: str
) -> str:
    """The caller's password hash that `password` matches (the slow step, before any lock)."""
    account = await _live_account(session=session, user_id=caller.user_id)
    if not await passwords.verify_password(account.password_hash, password):
        raise BadRequest(WRONG_CURRENT_PASSWORD)
    return account.password_hash


async def _lock_unchanged_account(
    *, session: AsyncSession, caller: Principal, verified_hash: str
) -> Account:
    """The caller's account, locked, as long as its password is still the one verified."""
    account = _live(await _lock_account(session=session, account_id=caller.user_id))
    if account.password_hash != verified_hash:  # changed while we were hashing
        raise BadRequest(WRONG_CURRENT_PASSWORD)
    return account


_AccountT = TypeVar("_AccountT", Account, AccountPublic)


def _live(account: _AccountT | None) -> _AccountT:
    """The token was valid, but the account may have gone since: treat it as signed out."""
    if account is None or not account.is_active:
        raise Unauthorized("Account no longer available")
    return account


async def _live_account(*, session: AsyncSession, user_id: uuid.UUID) -> Account:
    """The caller's account, to change it in this session."""
    return _live(await get_account(session=session, account_id=user_id))


_ONE_ACCOUNT = ReadQuery(sa.select(Account).where(col(Account.id) == sa.bindparam("user_id")))


async def current_account(*, database: Database, caller: Principal) -> AccountPublic:
    """The caller's account, as long as it is still there and active."""
    row = await database.fetch_one(_ONE_ACCOUNT, user_id=caller.user_id)
    return _live(None if row is None else AccountPublic.model_validate(dict(row)))


# ---- login and sessions -------------------------------------------------------------------


async def authenticate(
    *, session: AsyncSession, redis: Redis, email: str, password: str, address: str
) -> Account:
    """Identical answers for an unknown email and a wrong password, in content and in time."""
    email = email.strip().lower()
    await throttle.claim_login_attempt(redis, email=email, address=address)
    account = await get_account_by_email(session=session, email=email)
    password_hash = account.password_hash if account else None
    if not await passwords.verify_password(password_hash, password) or account is None:
        raise Unauthorized(INVALID_CREDENTIALS)  # counted as a failure already
    await throttle.forgive_login_attempt(redis, email=email, address=address)
    if not account.is_active:
        raise Unauthorized("Account is deactivated")
    verified_version = account.credentials_version
    rehashed = None
    if passwords.needs_rehash(account.password_hash):
        rehashed = await passwords.hash_password(password)
    # Locked until start_session commits; a credential change meanwhile voids this login.
    locked = await _lock_account(session=session, account_id=account.id)
    if locked is None or locked.credentials_version != verified_version:
        raise Unauthorized(INVALID_CREDENTIALS)
    if rehashed is not None:
        locked.password_hash = rehashed
        session.add(locked)
    return locked


async def start_session(
    *,
    session: AsyncSession,
    keyring: Keyring,
    account: Account,
    user_agent: str | None,
    ip: str | None,
) -> TokenPair:
    login = LoginSession(
        user_id=account.id,
        refresh_token_hash="",
        user_agent=(user_agent or None) and user_agent[:512],
        ip=ip,
        expires_at=utcnow() + timedelta(seconds=settings.REFRESH_TOKEN_TTL),
    )
    pair = mint_pair(keyring, account, login.id)
    login.refresh_token_hash = sha256(pair.refresh_token)
    session.add(login)
    await session.commit()
    return pair


async def refresh(
    *,
    session: AsyncSession,
    redis: Redis,
    keyring: Keyring,
    verifier: TokenVerifier,
    revocations: RevocationChecks,
    refresh_token: str,
) -> TokenPair:
    """Rotate: the presented token is spent. A spent one presented again ends its session.

    The swap is a single conditional UPDATE, so of two concurrent refreshes exactly one
    matches the current hash; the other is, by definition, a reuse.
    """
    try:
        principal = await verifier.verify(refresh_token, revocations, expected_type="refresh")
    except InvalidToken as exc:
        raise Unauthorized(str(exc)) from exc
    account = _live(await _lock_account(session=session, account_id=principal.user_id))
    pair = mint_pair(keyring, account, principal.session_id)
    now = utcnow()
    swapped = await session.exec(
        sa.update(LoginSession)
        .where(
            col(LoginSession.id) == principal.session_id,
            col(LoginSession.user_id) == principal.user_id,
            col(LoginSession.refresh_token_hash) == sha256(refresh_token),
            col(LoginSession.revoked_at).is_(None),
            col(LoginSession.expires_at) > now,
        )
        .values(
            refresh_token_hash=sha256(pair.refresh_token),
            last_used_at=now,
            expires_at=now + timedelta(seconds=settings.REFRESH_TOKEN_TTL),
        )
        .returning(col(LoginSession.id))
    )
    if swapped.first() is None:
        await session.rollback()
        await _end_sessions(session=session, redis=redis, session_ids=[principal.session_id])
        await session.commit()
        raise Unauthorized("Refresh token already used; the session has been ended")
    await session.commit()
    return pair


async def _end_sessions(
    *, session: AsyncSession, redis: Redis, session_ids: list[uuid.UUID]
) -> None:
    await revocations.revoke_sessions(session=session, redis=redis, session_ids=session_ids)
    await session.exec(
        sa.update(LoginSession)
        .where(col(LoginSession.id).in_(session_ids), col(LoginSession.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )


async def _end_credentials(*, session: AsyncSession, redis: Redis, account: Account) -> None:
    """What every credential change does, under the account's lock; the caller commits.

    A "not valid before" for every token, and each session ended by its id as well, so a
    login that committed just before cannot slip past on a clock a little ahead; logins
    verified before it find the version moved on; reset links mailed before it die.
    """
    account.credentials_version += 1
    session.add(account)
    ended = await session.exec(
        sa.update(LoginSession)
        .where(col(LoginSession.user_id) == account.id, col(LoginSession.revoked_at).is_(None))
        .values(revoked_at=utcnow())
        .returning(col(LoginSession.id))
    )
    session_ids = list(ended.scalars().all())
    await revocations.revoke_sessions(session=session, redis=redis, session_ids=session_ids)
    await revocations.revoke_user_tokens(session=session, redis=redis, user_id=account.id)
    await session.exec(
        sa.update(OneTimeToken)
        .where(
            col(OneTimeToken.user_id) == account.id,
            col(OneTimeToken.purpose) == TokenPurpose.RESET_PASSWORD.value,
            col(OneTimeToken.used_at).is_(None),
        )
        .values(used_at=utcnow())
    )


async def logout(
    *,
    session: AsyncSession,
    redis: Redis,
    verifier: TokenVerifier,
    caller: Principal,
    refresh_token: str | None,
) -> None:
    """End the caller's session, and the refresh token's if it is another of theirs."""
    session_ids = [caller.session_id]
    if refresh_token:
        try:
            claims = await verifier.decode(refresh_token, expected_type="refresh")
            other = principal_from_claims(claims)
        except InvalidToken:
            other = None  # like RFC 7009: an unusable token needs no revoking
        if other is not None and other.user_id == caller.user_id:
            session_ids.append(other.session_id)
    await _end_sessions(session=session, redis=redis, session_ids=sorted(set(session_ids)))
    await session.commit()


async def logout_all(*, session: AsyncSession, redis: Redis, caller: Principal) -> None:
    account = _live(await _lock_account(session=session, account_id=caller.user_id))
    await _end_credentials(session=session, redis=redis, account=account)
    await session.commit()


def _live_sessions_of(user_id: Any, now: Any) -> tuple[ColumnElement[bool], ...]:
    """The user's sessions not ended and not expired (values or bound parameters)."""
    return (
        col(LoginSession.user_id) == user_id,
        col(LoginSession.revoked_at).is_(None),
        col(LoginSession.expires_at) > now,
    )


_LIVE_SESSIONS = PageQuery(
    LoginSession,
    columns=(
        col(LoginSession.id).label("sid"),
        col(LoginSession.created_at),
        col(LoginSession.last_used_at),
        col(LoginSession.user_agent),
        col(LoginSession.ip),
        (col(LoginSession.id) == sa.bindparam("current_sid")).label("current"),
    ),
    where=_live_sessions_of(sa.bindparam("user_id"), sa.bindparam("now")),
    order_by=(col(LoginSession.last_used_at).desc(),),
)


async def list_sessions(
    *, database: Database, caller: Principal, limit: int, offset: int
) -> SessionList:
    """A page of the caller's live sessions, most recently used first."""
    return await fetch_page(
        database,
        _LIVE_SESSIONS,
        SessionList,
        limit=limit,
        offset=offset,
        user_id=caller.user_id,
        now=utcnow(),
        current_sid=caller.session_id,
    )


async def end_session(
    *, session: AsyncSession, redis: Redis, caller: Principal, session_id: uuid.UUID
) -> None:
    """Another user's session, or one already over, is simply not found."""
    query = select(col(LoginSession.id)).where(
        col(LoginSession.id) == session_id, *_live_sessions_of(caller.user_id, utcnow())
    )
    if (await session.exec(query)).first() is None:
        raise NotFound("Session not found")
    await _end_sessions(session=session, redis=redis, session_ids=[session_id])
    await session.commit()


# ---- email verification and passwords -----------------------------------------------------


INVALID_ONE_TIME_TOKEN = "Invalid, expired or already used token"


def _usable_one_time_token(token: str, purpose: TokenPurpose) -> tuple[ColumnElement[bool], ...]:
    return (
        col(OneTimeToken.token_hash) == sha256(token),
        col(OneTimeToken.purpose) == purpose.value,
        col(OneTimeToken.used_at).is_(None),
        col(OneTimeToken.expires_at) > utcnow(),
    )


async def _one_time_token_owner(
    *, session: AsyncSession, token: str, purpose: TokenPurpose
) -> uuid.UUID:
    """Whose the token is, if it is usable now; it stays unspent."""
    found = await session.exec(
        select(col(OneTimeToken.user_id)).where(*_usable_one_time_token(token, purpose))
    )
    user_id = found.first()
    if user_id is None:
        raise BadRequest(INVALID_ONE_TIME_TOKEN)
    return user_id


async def _spend_one_time_token(
    *, session: AsyncSession, token: str, purpose: TokenPurpose
) -> uuid.UUID:
    """Single use even under concurrency: the UPDATE only matches an unspent, live token."""
    spent = await session.exec(
        sa.update(OneTimeToken)
        .where(*_usable_one_time_token(token, purpose))
        .values(used_at=utcnow())
        .returning(col(OneTimeToken.user_id))
    )
    user_id = spent.scalar_one_or_none()
    if user_id is None:
        raise BadRequest(INVALID_ONE_TIME_TOKEN)
    return user_id


async def verify_email(*, session: AsyncSession, token: str) -> AccountPublic:
    user_id = await _spend_one_time_token(
        session=session, token=token, purpose=TokenPurpose.VERIFY_EMAIL
    )
    account = await get_account(session=session, account_id=user_id)
    if account is None:
        raise BadRequest(INVALID_ONE_TIME_TOKEN)
    account.is_verified = True
    return await _save(session, account)


@dataclass(frozen=True)
class _MailedToken:
    """A one-time token the user asks to be mailed, and the event that carries it."""

    purpose: TokenPurpose
    event_type: str
    token_field: str


_VERIFICATION = _MailedToken(
    TokenPurpose.VERIFY_EMAIL, "auth.verification_requested", "verification_token"
)
_RESET = _MailedToken(TokenPurpose.RESET_PASSWORD, "auth.password_reset_requested", "reset_token")
_TTL = {
    TokenPurpose.VERIFY_EMAIL: settings.VERIFICATION_TOKEN_TTL,
    TokenPurpose.RESET_PASSWORD: settings.RESET_TOKEN_TTL,
}


async def _mail_one_time_token(
    *, session: AsyncSession, redis: Redis, account: Account, mailed: _MailedToken
) -> bool:
    """Issue a one-time token and hand it to the notifications service in an event; False,
    doing nothing, if one was mailed to this account too recently."""
    if await _lock_account(session=session, account_id=account.id) is None:
        return True  # deleted meanwhile: nothing to mail, nothing to try again
    purpose = mailed.purpose.value
    if not await throttle.claim_mail_slot(redis, purpose=purpose, user_id=str(account.id)):
        return False
    token = await _issue_one_time_token(
        session=session, user_id=account.id, purpose=mailed.purpose, ttl=_TTL[mailed.purpose]
    )
    add_event(
        session,
        type=mailed.event_type,
        producer=PRODUCER,
        data={"user_id": str(account.id), "email": account.email, mailed.token_field: token},
        aggregate=str(account.id),
    )
    await session.commit()
    return True


async def resend_verification(*, session: AsyncSession, redis: Redis, caller: Principal) -> None:
    account = await _live_account(session=session, user_id=caller.user_id)
    if account.is_verified:
        raise Conflict("Email is already verified")
    if not await _mail_one_time_token(
        session=session, redis=redis, account=account, mailed=_VERIFICATION
    ):
        retry_after = await throttle.mail_slot_retry_after(
            redis, purpose=_VERIFICATION.purpose.value, user_id=str(account.id)
        )
        raise TooManyRequests(retry_after, "A verification mail was sent recently")


async def forgot_password(
    *, sessionmaker: async_sessionmaker[AsyncSession], redis: Redis, email: str
) -> None:
    """Runs once the 202 is sent, known email or not, so neither its time nor a failure can
    tell whether the email has an account; a failure is logged, and the user asks again."""
    try:
        async with sessionmaker() as session:
            account = await get_account_by_email(session=session, email=email)
            if account is not None and account.is_active:
                await _mail_one_time_token(
                    session=session, redis=redis, account=account, mailed=_RESET
                )
    except Exception:  # noqa: BLE001 - nobody is waiting for an answer any more
        logger.exception("password reset request not handled")


async def _set_password(
    *, session: AsyncSession, redis: Redis, account: Account, password_hash: str
) -> None:
    """A new password ends every token of the account and is announced; the caller commits."""
    await _end_credentials(session=session, redis=redis, account=account)
    account.password_hash = password_hash
    account.updated_at = utcnow()
    session.add(account)
    add_event(
        session,
        type="auth.password_changed",
        producer=PRODUCER,
        data={"user_id": str(account.id), "email": account.email},
        aggregate=str(account.id),
    )


async def reset_password(
    *, session: AsyncSession, redis: Redis, token: str, new_password: str
) -> None:
    """The token is looked up, the password hashed, then the account locked and the token
    spent under the lock: a change meanwhile has spent it, and this reset is refused."""
    user_id = await _one_time_token_owner(
        session=session, token=token, purpose=TokenPurpose.RESET_PASSWORD
    )
    password_hash = await passwords.hash_password(new_password)
    account = await _lock_account(session=session, account_id=user_id)
    if account is None or not account.is_active:
        raise BadRequest(INVALID_ONE_TIME_TOKEN)
    await _spend_one_time_token(session=session, token=token, purpose=TokenPurpose.RESET_PASSWORD)
    await _set_password(session=session, redis=redis, account=account, password_hash=password_hash)
    await session.commit()


async def change_password(
    *,
    session: AsyncSession,
    redis: Redis,
    caller: Principal,
    current_password: str,
    new_password: str,
) -> None:
    verified = await _verify_current_password(
        session=session, caller=caller, password=current_password
    )
    password_hash = await passwords.hash_password(new_password)
    account = await _lock_unchanged_account(session=session, caller=caller, verified_hash=verified)
    await _set_password(session=session, redis=redis, account=account, password_hash=password_hash)
    await session.commit()
