"""HTTP routes of the auth service, all under `/api/v1/auth`."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, Form, Query, Request, Response, status
from fastapi.responses import HTMLResponse

from auth import service
from auth.deps import ClientAddress, KeyringDep, RevocationsDep, VerifierDep
from auth.models import (
    AccountAdminUpdate,
    AccountCreate,
    AccountDelete,
    AccountList,
    AccountPublic,
    LogoutRequest,
    OneTimeTokenRequest,
    PasswordChange,
    PasswordForgot,
    PasswordReset,
    RefreshRequest,
    SessionList,
    TokenForm,
    TokenPair,
)
from auth.pages import verification_page
from servicekit.auth import AdminCaller, Caller
from servicekit.db import DatabaseDep, SessionDep
from servicekit.errors import BadRequest
from servicekit.fields import Text
from servicekit.listing import Limit, Offset
from servicekit.oauth import OAuthErrorBody, TokenEndpointRoute
from servicekit.redis import RedisDep

router = APIRouter(tags=["auth"])

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: {"description": "Missing or invalid token"}}


@router.post("/register", status_code=status.HTTP_201_CREATED, responses={409: {}})
async def register(session: SessionDep, account_in: AccountCreate) -> AccountPublic:
    """Create an account; a verification mail follows."""
    return await service.register(session=session, account_in=account_in)


#: The two routes that hand out tokens: `no-store` on every answer, OAuth `error` codes on
#: failures (servicekit.oauth); included into `router` right below them.
token_router = APIRouter(tags=["auth"], route_class=TokenEndpointRoute)


def _oauth_error(description: str) -> dict[str, Any]:
    return {"model": OAuthErrorBody, "description": description}


_TOKEN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: _oauth_error('Wrong credentials, or a refresh token refused: `error` is "invalid_grant"'),
    422: _oauth_error('Malformed form: `error` is "invalid_request" or "unsupported_grant_type"'),
}


@token_router.post(
    "/token",
    responses=_TOKEN_ERRORS
    | {429: _oauth_error('Too many failed logins: `error` is "temporarily_unavailable"')},
)
async def token(
    request: Request,
    session: SessionDep,
    redis: RedisDep,
    keyring: KeyringDep,
    verifier: VerifierDep,
    revocations: RevocationsDep,
    address: ClientAddress,
    form: Annotated[TokenForm, Form()],
) -> TokenPair:
    """OAuth2 token endpoint: the password grant (`username` is the email) or
    `grant_type=refresh_token`, which rotates exactly as `/refresh` does."""
    if form.is_refresh:
        return await service.refresh(
            session=session,
            redis=redis,
            keyring=keyring,
            verifier=verifier,
            revocations=revocations,
            refresh_token=form.refresh_token or "",
        )
    account = await service.authenticate(
        session=session,
        redis=redis,
        email=form.username or "",
        password=form.password or "",
        address=address,
    )
    return await service.start_session(
        session=session,
        keyring=keyring,
        account=account,
        user_agent=request.headers.get("user-agent"),
        ip=address,
    )


@token_router.post("/refresh", responses=_TOKEN_ERRORS)
async def refresh(
    session: SessionDep,
    redis: RedisDep,
    keyring: KeyringDep,
    verifier: VerifierDep,
    revocations: RevocationsDep,
    body: RefreshRequest,
) -> TokenPair:
    """Exchange a refresh token for a new pair; the presented one is spent."""
    return await service.refresh(
        session=session,
        redis=redis,
        keyring=keyring,
        verifier=verifier,
        revocations=revocations,
        refresh_token=body.refresh_token,
    )


router.include_router(token_router)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=UNAUTHORIZED)
async def logout(
    caller: Caller,
    session: SessionDep,
    redis: RedisDep,
    verifier: VerifierDep,
    body: Annotated[LogoutRequest | None, Body()] = None,
) -> None:
    """End this session: its access and refresh tokens stop working everywhere."""
    await service.logout(
        session=session,
        redis=redis,
        verifier=verifier,
        caller=caller,
        refresh_token=body.refresh_token if body else None,
    )


@router.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT, responses=UNAUTHORIZED)
async def logout_all(caller: Caller, session: SessionDep, redis: RedisDep) -> None:
    """Every token issued to the caller so far stops working."""
    await service.logout_all(session=session, redis=redis, caller=caller)


@router.get("/me", responses=UNAUTHORIZED)
async def read_me(caller: Caller, database: DatabaseDep) -> AccountPublic:
    """The caller's account."""
    return await service.current_account(database=database, caller=caller)


@router.delete("/me", status_code=status.HTTP_204_NO_CONTENT, responses={400: {}, 401: {}})
async def delete_me(
    caller: Caller, session: SessionDep, redis: RedisDep, body: AccountDelete
) -> None:
    """Delete the caller's account (password required); every service erases its data."""
    await service.delete_account(
        session=session, redis=redis, caller=caller, password=body.password
    )


@router.get("/sessions", responses=UNAUTHORIZED)
async def list_sessions(
    caller: Caller, database: DatabaseDep, limit: Limit = 20, offset: Offset = 0
) -> SessionList:
    """The caller's live login sessions, most recently used first."""
    return await service.list_sessions(database=database, caller=caller, limit=limit, offset=offset)


@router.delete(
    "/sessions/{sid}", status_code=status.HTTP_204_NO_CONTENT, responses={401: {}, 404: {}}
)
async def end_session(caller: Caller, session: SessionDep, redis: RedisDep, sid: uuid.UUID) -> None:
    """End one of the caller's sessions everywhere."""
    await service.end_session(session=session, redis=redis, caller=caller, session_id=sid)


@router.post("/verify-email", responses={400: {}})
async def verify_email(session: SessionDep, body: OneTimeTokenRequest) -> AccountPublic:
    """Confirm the email address with the token from the verification mail."""
    return await service.verify_email(session=session, token=body.token)


@router.get("/verify-email", response_class=HTMLResponse, responses={400: {}})
async def verify_email_link(
    session: SessionDep, token: Annotated[Text, Query(min_length=1, max_length=256)]
) -> HTMLResponse:
    """The link in the verification mail: a small page that says how it went."""
    try:
        await service.verify_email(session=session, token=token)
    except BadRequest as exc:
        return HTMLResponse(verification_page(verified=False, detail=exc.detail), 400)
    return HTMLResponse(verification_page(verified=True))


# `response_class=Response`: the 202s have no body, and the schema must not promise JSON.
@router.post(
    "/verify-email/resend",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    responses={401: {}, 409: {}, 429: {}},
)
async def resend_verification(caller: Caller, session: SessionDep, redis: RedisDep) -> Response:
    """Send a new verification mail."""
    await service.resend_verification(session=session, redis=redis, caller=caller)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post("/password/forgot", status_code=status.HTTP_202_ACCEPTED, response_class=Response)
async def forgot_password(
    database: DatabaseDep, redis: RedisDep, body: PasswordForgot, background: BackgroundTasks
) -> Response:
    """Mail a reset link if the email is known; the answer is the same either way."""
    # After the answer is sent: its time cannot tell whether the email has an account.
    background.add_task(
        service.forgot_password, sessionmaker=database.sessionmaker, redis=redis, email=body.email
    )
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post("/password/reset", status_code=status.HTTP_204_NO_CONTENT, responses={400: {}})
async def reset_password(session: SessionDep, redis: RedisDep, body: PasswordReset) -> None:
    """Set a new password with the mailed token; every existing token is revoked."""
    await service.reset_password(
        session=session, redis=redis, token=body.token, new_password=body.new_password
    )


@router.post(
    "/password/change", status_code=status.HTTP_204_NO_CONTENT, responses={400: {}, 401: {}}
)
async def change_password(
    caller: Caller, session: SessionDep, redis: RedisDep, body: PasswordChange
) -> None:
    """Change the password; every existing token is revoked."""
    await service.change_password(
        session=session,
        redis=redis,
        caller=caller,
        current_password=body.current_password,
        new_password=body.new_password,
    )


@router.get("/accounts", responses={401: {}, 403: {}})
async def list_accounts(
    _: AdminCaller,
    database: DatabaseDep,
    q: Annotated[Text | None, Query(max_length=320)] = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> AccountList:
    """Every account, newest first; `q` filters by email (admin only)."""
    return await service.list_accounts(database=database, q=q, limit=limit, offset=offset)


@router.patch("/accounts/{account_id}", responses={401: {}, 403: {}, 404: {}})
async def update_account(
    admin: AdminCaller,
    session: SessionDep,
    redis: RedisDep,
    account_id: uuid.UUID,
    changes: AccountAdminUpdate,
) -> AccountPublic:
    """Change roles or activation; the account's current tokens are revoked (admin only)."""
    return await service.update_account(
        session=session, redis=redis, admin=admin, account_id=account_id, changes=changes
    )


#: Seconds any cache may serve the key set. Far below the rotation overlap (README, Key rotation:
#: a retired key stays published for REFRESH_TOKEN_TTL), and a verifier that meets an unknown
#: `kid` fetches the set again, so a cached set never refuses a token for long.
JWKS_MAX_AGE = 300


@router.get("/.well-known/jwks.json")
async def jwks(keyring: KeyringDep, response: Response) -> dict[str, list[dict[str, Any]]]:
    """Public keys that verify our tokens; several during a key rotation."""
    response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE}"
    return keyring.jwks
