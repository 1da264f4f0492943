"""How many tokens per second the shared verifier checks, and what one login's hash costs.

`uv run python -m bench.tokens`. Signature plus claims only: revocation is one Redis
round trip, measured with the HTTP benchmarks instead.
"""

import asyncio
import statistics
import time
import uuid

from argon2 import PasswordHasher

from servicekit.auth import StaticKeySource, TokenVerifier, issue_token
from servicekit.keys import generate_private_key, public_jwk

ISSUER, AUDIENCE = "http://localhost:8000/api/v1/auth", "platform"


async def tokens_per_second(algorithm: str, *, distinct: bool, seconds: float = 2.0) -> float:
    """`distinct`: every check sees a token it has not verified before (cache defeated)."""
    key = generate_private_key(algorithm)
    kid = public_jwk(key.public_key())["kid"]
    tokens = [
        issue_token(
            private_key=key, kid=kid, algorithm=algorithm, issuer=ISSUER, audience=AUDIENCE,
            user_id=uuid.uuid4(), session_id=uuid.uuid4(), roles=["user"],
            token_type="access", ttl_seconds=900, token_id=uuid.uuid4().hex,
        )[0]
        for _ in range(2000 if distinct else 100)
    ]  # fmt: skip
    verifier = TokenVerifier(
        StaticKeySource({kid: key.public_key()}),
        issuer=ISSUER, audience=AUDIENCE, algorithm=algorithm,
        cache_size=0 if distinct else 10_000,
    )  # fmt: skip
    checked, deadline = 0, time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        for token in tokens:
            await verifier.decode(token, expected_type="access")
        checked += len(tokens)
    return checked / (time.perf_counter() - started)


def login_hash_seconds(runs: int = 20) -> list[float]:
    from auth.settings import settings

    hasher = PasswordHasher(
        memory_cost=settings.PASSWORD_HASH_MEMORY_KIB,
        time_cost=settings.PASSWORD_HASH_TIME_COST,
        parallelism=settings.PASSWORD_HASH_PARALLELISM,
    )
    stored = hasher.hash("correct horse battery")
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        hasher.verify(stored, "correct horse battery")
        timings.append(time.perf_counter() - started)
    return timings


def main() -> None:
    print("Token verification (signature + claims, one core):")
    for algorithm in ("RS256", "EdDSA"):
        for distinct, label in ((True, "first sight"), (False, "seen before")):
            rate = asyncio.run(tokens_per_second(algorithm, distinct=distinct))
            print(
                f"  {algorithm:<6} {label:<12} {rate:>10,.0f} tokens/s  ({1e6 / rate:.1f} µs each)"
            )
    timings = login_hash_seconds()
    print("Login password check (Argon2id, the auth service's settings):")
    print(
        f"  median {statistics.median(timings) * 1000:.1f} ms, "
        f"max {max(timings) * 1000:.1f} ms over {len(timings)} runs"
    )


if __name__ == "__main__":
    main()
