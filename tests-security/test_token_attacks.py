"""The JWT attack matrix against each service's protected route, through the gateway.

Forged tokens are signed with the stack's real key wherever the attack is in the claims,
so each one is refused for the reason it names and not merely for a bad signature. Every
refusal is a 401 with `WWW-Authenticate: Bearer error="invalid_token"` and a `detail`; the
control, a token minted the same way without the flaw, is accepted.
"""

import base64
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from servicekit.keys import PrivateKey, generate_private_key, public_jwk

PROTECTED = {
    "auth": "/api/v1/auth/me",
    "users": "/api/v1/users/me",
    "items": "/api/v1/items/",
    "notifications": "/api/v1/notifications/",
}
AUDIENCE = "platform"
ATTACKER_KEY = generate_private_key("RS256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


@dataclass
class Forge:
    """Mints tokens for the shared user, valid unless an attack says otherwise."""

    key: PrivateKey
    issuer: str
    user: Any

    @property
    def kid(self) -> str:
        return str(public_jwk(self.key.public_key())["kid"])

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = time.time()
        claims = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": self.user.user_id,
            "iat": now,
            "exp": int(now + 300),
            "jti": uuid.uuid4().hex,
            "sid": self.user.session_id,
            "type": "access",
            "roles": ["user"],
        }
        claims.update(changes)
        return claims

    def sign(
        self,
        claims: dict[str, Any],
        *,
        key: Any = None,
        algorithm: str = "RS256",
        headers: dict[str, Any] | None = None,
    ) -> str:
        return jwt.encode(
            claims,
            self.key if key is None else key,
            algorithm=algorithm,
            headers={"kid": self.kid} if headers is None else headers,
        )

    def without(self, claim: str) -> str:
        claims = self.claims()
        del claims[claim]
        return self.sign(claims)


def _raw_rs256(forge: Forge, header: dict[str, Any]) -> str:
    """Signed by hand: PyJWT refuses to write some of the headers an attacker would."""
    signing_input = f"{_segment(header)}.{_segment(forge.claims())}"
    signature = forge.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def _alg_none(forge: Forge) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": forge.kid}
    return f"{_segment(header)}.{_segment(forge.claims())}."


def _hs256_with_public_key(forge: Forge) -> str:
    """The classic confusion: the public key, known to all, used as an HMAC secret."""
    public_pem = forge.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": forge.kid}
    signing_input = f"{_segment(header)}.{_segment(forge.claims())}"
    signature = hmac.new(public_pem, signing_input.encode(), "sha256").digest()
    return f"{signing_input}.{_b64(signature)}"


def _tampered_payload(forge: Forge) -> str:
    header, _, signature = forge.sign(forge.claims()).split(".")
    return f"{header}.{_segment(forge.claims(roles=['user', 'admin']))}.{signature}"


def _signature_stripped(forge: Forge) -> str:
    header, payload, _ = forge.sign(forge.claims()).split(".")
    return f"{header}.{payload}."


def _attacker_key_with_real_kid(forge: Forge) -> str:
    return forge.sign(forge.claims(), key=ATTACKER_KEY)


def _attacker_key_advertised_by_jku(forge: Forge) -> str:
    attacker_kid = str(public_jwk(ATTACKER_KEY.public_key())["kid"])
    headers = {"kid": attacker_kid, "jku": "http://attacker.example/jwks.json"}
    return forge.sign(forge.claims(), key=ATTACKER_KEY, headers=headers)


def _refresh_token_as_access(forge: Forge) -> str:
    return str(forge.user.refresh_token)


ATTACKS: dict[str, Callable[[Forge], str]] = {
    "alg none": _alg_none,
    "HS256 signed with the public key": _hs256_with_public_key,
    "RS512 with the real key": lambda f: f.sign(f.claims(), algorithm="RS512"),
    "PS256 with the real key": lambda f: f.sign(f.claims(), algorithm="PS256"),
    "tampered payload (admin role)": _tampered_payload,
    "signature stripped": _signature_stripped,
    "attacker's key under the real kid": _attacker_key_with_real_kid,
    "attacker's key advertised by jku": _attacker_key_advertised_by_jku,
    "unknown kid": lambda f: f.sign(f.claims(), headers={"kid": "no-such-key"}),
    "no kid": lambda f: f.sign(f.claims(), headers={}),
    "kid not a string": lambda f: _raw_rs256(f, {"alg": "RS256", "kid": 7}),
    "kid path traversal": lambda f: f.sign(f.claims(), headers={"kid": "../../../etc/passwd"}),
    "wrong iss": lambda f: f.sign(f.claims(iss="http://attacker.example/api/v1/auth")),
    "wrong aud": lambda f: f.sign(f.claims(aud="someone-else")),
    "aud list without ours": lambda f: f.sign(f.claims(aud=["a", "b"])),
    "expired": lambda f: f.sign(f.claims(iat=time.time() - 600, exp=int(time.time() - 300))),
    "exp not a number": lambda f: f.sign(f.claims(exp="tomorrow")),
    "not yet valid (nbf)": lambda f: f.sign(f.claims(nbf=int(time.time() + 3600))),
    "refresh token as access (real)": _refresh_token_as_access,
    "type refresh": lambda f: f.sign(f.claims(type="refresh")),
    "type unknown": lambda f: f.sign(f.claims(type="id")),
    **{
        f"missing {claim}": (lambda c: lambda f: f.without(c))(claim)
        for claim in ("iss", "aud", "sub", "iat", "exp", "jti", "sid", "type", "roles")
    },
    "sub not a string": lambda f: f.sign(f.claims(sub=12345)),
    "sub not a UUID": lambda f: f.sign(f.claims(sub="admin")),
    "sub null": lambda f: f.sign(f.claims(sub=None)),
    "sid not a UUID": lambda f: f.sign(f.claims(sid="*")),
    "roles a string": lambda f: f.sign(f.claims(roles="admin")),
    "roles holding a number": lambda f: f.sign(f.claims(roles=[1])),
    "roles an object": lambda f: f.sign(f.claims(roles={"admin": True})),
    "payload not JSON": lambda f: f"{_segment({'alg': 'RS256', 'kid': f.kid})}.{_b64(b'{')}.x",
    "five segments": lambda f: f.sign(f.claims()) + ".x.y",
}


@pytest.fixture(scope="module")
def forge(signing_key: PrivateKey, issuer: str, user: Any) -> Forge:
    return Forge(signing_key, issuer, user)


def _assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text[:500]
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    # RFC 6750 §3.1: a presented token that is refused is named `invalid_token`.
    assert response.headers["www-authenticate"] == (
        f'Bearer error="invalid_token", error_description="{detail}"'
    )
    assert response.headers["x-request-id"]
    assert "Traceback" not in response.text


SOUND: dict[str, Callable[[Forge], str]] = {
    "signed by PyJWT": lambda f: f.sign(f.claims()),
    "signed by hand": lambda f: _raw_rs256(f, {"alg": "RS256", "typ": "JWT", "kid": f.kid}),
}


@pytest.mark.parametrize("minting", SOUND)
@pytest.mark.parametrize("service", PROTECTED)
def test_token_minted_like_the_forgeries_but_sound_is_accepted(
    api: httpx.Client, forge: Forge, service: str, minting: str
) -> None:
    token = SOUND[minting](forge)
    response = api.get(PROTECTED[service], headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("service", PROTECTED)
def test_forged_token_is_401(api: httpx.Client, forge: Forge, service: str, attack: str) -> None:
    token = ATTACKS[attack](forge)
    response = api.get(PROTECTED[service], headers={"Authorization": f"Bearer {token}"})
    _assert_401(response)


@pytest.mark.parametrize("service", PROTECTED)
def test_token_of_an_ended_session_is_401(
    api: httpx.Client, make_user: Callable[[], Any], service: str
) -> None:
    login = make_user()
    assert api.post("/api/v1/auth/logout", headers=login.headers).status_code == 204
    _assert_401(api.get(PROTECTED[service], headers=login.headers))


@pytest.mark.parametrize("attack", ["alg none", "expired", "unknown kid", "roles a string"])
def test_forged_token_closes_the_notification_stream_with_4401(
    gateway_url: str, forge: Forge, attack: str
) -> None:
    url = httpx.URL(gateway_url).copy_with(scheme="ws", path="/api/v1/notifications/ws")
    with connect(str(url), open_timeout=10) as websocket:
        websocket.send(json.dumps({"token": ATTACKS[attack](forge)}))
        with pytest.raises(ConnectionClosed) as closed:
            websocket.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401
