"""What a service's author sees when the conftest is incomplete: an error naming the fix."""

import pytest

from servicekit_testing.environment import DATABASE_NAME_ENV, REDIS_PORT_ENV


def a_conftest_using_the_kit(pytester: pytest.Pytester) -> None:
    """The repository's asyncio settings and a conftest that enables the plugin, nothing else."""
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = session\n"
    )
    pytester.makeconftest('pytest_plugins = ["servicekit_testing.plugin"]\n')


@pytest.mark.parametrize("fixture", ["service_app", "service_dir"])
def test_a_conftest_without_its_app_or_folder_is_told_to_define_it(
    pytester: pytest.Pytester, fixture: str
) -> None:
    a_conftest_using_the_kit(pytester)
    pytester.makepyfile(f"def test_anything({fixture}):\n    pass\n")

    result = pytester.runpytest_inprocess()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*conftest.py must define a `{fixture}` fixture*"])


def test_a_conftest_that_never_prepared_the_environment_is_told_so(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(REDIS_PORT_ENV, raising=False)
    monkeypatch.delenv(DATABASE_NAME_ENV, raising=False)
    a_conftest_using_the_kit(pytester)
    pytester.makepyfile("def test_anything(redis_server):\n    pass\n")

    result = pytester.runpytest_inprocess()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*call servicekit_testing.prepare_environment(<service>)*"])
