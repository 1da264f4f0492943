from pathlib import Path

from servicekit_testing import migrations_round_trip


async def test_migrations_upgrade_downgrade_and_match_models(
    service_dir: Path, database: str
) -> None:
    assert await migrations_round_trip(service_dir, database) == []
