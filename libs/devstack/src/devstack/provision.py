"""Each service's own database and role, created on a PostgreSQL server when missing."""

import asyncpg

SERVICES = ("auth", "users", "items", "notifications")


def _quote_ident(name: str) -> str:
    if not name.isidentifier():
        raise ValueError(f"refusing unusual identifier {name!r}")
    return f'"{name}"'


async def ensure_service_database(admin_dsn: str, name: str, password: str) -> None:
    """Create role and database `name`, owned by that role and closed to every other role."""
    ident = _quote_ident(name)
    connection = await asyncpg.connect(admin_dsn)
    try:
        role_exists = await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name)
        # Passwords cannot be bound as parameters in DDL; quote it as a literal instead.
        literal = "'" + password.replace("'", "''") + "'"
        verb = "ALTER" if role_exists else "CREATE"
        await connection.execute(f"{verb} ROLE {ident} LOGIN PASSWORD {literal}")
        db_exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not db_exists:
            await connection.execute(f"CREATE DATABASE {ident} OWNER {ident}")
        # No other service may connect: each service owns its data.
        await connection.execute(f"REVOKE ALL ON DATABASE {ident} FROM PUBLIC")
    finally:
        await connection.close()


async def drop_service_database(admin_dsn: str, name: str) -> None:
    ident = _quote_ident(name)
    connection = await asyncpg.connect(admin_dsn)
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {ident} WITH (FORCE)")
        await connection.execute(f"DROP ROLE IF EXISTS {ident}")
    finally:
        await connection.close()
