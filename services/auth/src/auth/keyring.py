"""The signing key and every public key still published in the JWKS.

Rotation without logging anyone out: sign with a new key, keep the old key's public
half in AUTH_PREVIOUS_PUBLIC_KEY_FILES until the old refresh tokens have expired.
"""

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auth.settings import Settings
from servicekit.keys import (
    PrivateKey,
    PublicKey,
    algorithm_of,
    generate_private_key,
    load_private_key,
    load_public_key,
    private_key_to_pem,
    public_jwk,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Keyring:
    signing_key: PrivateKey
    signing_kid: str
    #: kid -> public key, the signing key's included.
    public_keys: dict[str, PublicKey]
    jwks: dict[str, list[dict[str, Any]]]


def _development_key(settings: Settings) -> PrivateKey:
    """Generated once and kept on disk (git-ignored), so restarts keep tokens valid."""
    path = settings.AUTH_KEYS_DIR / f"signing-key-{settings.AUTH_ALGORITHM.lower()}.pem"
    if path.exists():
        return load_private_key(path.read_bytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_private_key(settings.AUTH_ALGORITHM)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_key_to_pem(key))
    logger.warning("generated a development signing key", extra={"path": str(path)})
    return key


def _signing_key(settings: Settings) -> PrivateKey:
    if settings.AUTH_PRIVATE_KEY is not None:
        return load_private_key(settings.AUTH_PRIVATE_KEY.get_secret_value().encode())
    if settings.AUTH_PRIVATE_KEY_FILE is not None:
        return load_private_key(Path(settings.AUTH_PRIVATE_KEY_FILE).read_bytes())
    if settings.ENVIRONMENT == "production":
        raise RuntimeError("AUTH_PRIVATE_KEY or AUTH_PRIVATE_KEY_FILE must be set in production")
    return _development_key(settings)


def load_keyring(settings: Settings) -> Keyring:
    signing_key = _signing_key(settings)
    if algorithm_of(signing_key) != settings.AUTH_ALGORITHM:
        raise RuntimeError(
            f"the signing key is for {algorithm_of(signing_key)}, "
            f"but AUTH_ALGORITHM is {settings.AUTH_ALGORITHM}"
        )
    public_keys = [signing_key.public_key()] + [
        load_public_key(path.read_bytes()) for path in settings.AUTH_PREVIOUS_PUBLIC_KEY_FILES
    ]
    jwks = [public_jwk(key) for key in public_keys]
    return Keyring(
        signing_key=signing_key,
        signing_kid=jwks[0]["kid"],
        public_keys={jwk["kid"]: key for jwk, key in zip(jwks, public_keys, strict=True)},
        jwks={"keys": [jwk for jwk in jwks if jwk["alg"] == settings.AUTH_ALGORITHM]},
    )
