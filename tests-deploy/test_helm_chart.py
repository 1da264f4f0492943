"""The Helm chart, checked as strictly as can be done without a cluster: helm lint, strict
schema validation of every rendered object, and what the objects say to each other."""

# ruff: noqa: S101 - pytest assertions (pyproject's per-file-ignores predate tests-deploy)

import copy
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from deploykit import (
    REPO_ROOT,
    SERVICES,
    interpolate,
    load_compose_raw,
    load_module,
    parse_dockerfile,
    render_dynamic_config,
)
from helmkit import (
    CHART,
    PRODUCTION_VALUES,
    VALUE_SETS,
    Rendered,
    container_environment,
    containers,
    helm,
    object_name,
    pod_spec,
    render,
    secret_data,
    selects,
)

from servicekit.settings import ServiceSettings

GATEWAY_DIR = REPO_ROOT / "gateway"
#: The oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and the newest the
#: validator knows: every object must be valid on both.
OLDEST_KUBERNETES = "1.25.0"
#: Variables the chart passes that are not service settings, and who reads them.
DOCUMENTED_EXTRAS = {
    "FORWARDED_ALLOW_IPS": "docker/entrypoint.py: uvicorn --forwarded-allow-ips",
    "MIGRATION_WAIT_SECONDS": "docker/entrypoint.py: how long `migrate` waits for PostgreSQL",
    "DATABASE_PASSWORD": "spliced into DATABASE_URL by the kubelet ($(DATABASE_PASSWORD))",
    "REDIS_PASSWORD": "spliced into REDIS_URL by the kubelet ($(REDIS_PASSWORD))",
}


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def values(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def rendered(values: str) -> Rendered:
    return render(VALUE_SETS[values])


@pytest.fixture(scope="module")
def default() -> Rendered:
    return render()


@pytest.fixture(scope="module")
def entrypoint() -> Any:
    return load_module("docker/entrypoint.py")


# ---- helm lint and strict schemas ----------------------------------------------------------


def test_helm_lint_is_clean(values: str) -> None:
    result = helm("lint", "--strict", str(CHART), *VALUE_SETS[values])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


def test_every_rendered_object_is_valid_under_strict(
    rendered: Rendered, tmp_path: Path, values: str
) -> None:
    """kubernetes-validate --strict: wrong types and unknown fields fail, on the newest
    Kubernetes it knows; the same objects on the oldest the chart declares."""
    manifest = tmp_path / f"{values}.yaml"
    manifest.write_text(rendered.text)
    newest = kubernetes_validate.latest_version()
    result = subprocess.run(  # noqa: S603 - the venv's own console script
        [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict",
         "--kubernetes-version", newest, str(manifest)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    passed = [line for line in result.stdout.splitlines() if " passed for resource " in line]
    assert len(passed) == len(rendered.objects) > 20, result.stdout
    for obj in rendered.objects:
        kubernetes_validate.validate(obj, OLDEST_KUBERNETES, strict=True)


def test_strict_validation_refuses_a_misspelt_field(default: Rendered) -> None:
    deployment = copy.deepcopy(default.get("Deployment", object_name("auth")))
    pod_spec(deployment)["containers"][0]["securityContext"]["readOnlyRootFS"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


# ---- workloads -------------------------------------------------------------------------------


def test_every_workload_runs_locked_down(rendered: Rendered) -> None:
    workloads = rendered.workloads()
    assert workloads
    for workload in workloads:
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] > 0, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in containers(workload):
            context = container["securityContext"]
            where = f"{name}/{container['name']}"
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["runAsNonRoot"] is True, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert container["resources"]["requests"].keys() >= {"cpu", "memory"}, where
            assert "memory" in container["resources"]["limits"], where


def test_every_workload_has_the_three_probes(rendered: Rendered) -> None:
    for workload in rendered.workloads():
        for container in pod_spec(workload)["containers"]:
            where = f"{workload['metadata']['name']}/{container['name']}"
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert probe in container, f"{where} lacks its {probe}"


@pytest.mark.parametrize("name", SERVICES)
def test_service_pods_run_as_the_images_user(rendered: Rendered, name: str) -> None:
    """The uid and gid docker/Dockerfile's runtime stage switches to (USER), so the pod
    reads what the image made readable, and the signing key's group mode works (fsGroup)."""
    [user] = parse_dockerfile().stage("runtime").all("USER")
    uid, _, gid = user.arguments.partition(":")
    context = pod_spec(rendered.get("Deployment", object_name(name)))["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (
        int(uid),
        int(gid),
        int(gid),
    )


def test_every_deployment_has_a_budget_and_scales_one_way(rendered: Rendered, values: str) -> None:
    """One PodDisruptionBudget per Deployment; replicas fixed, or left to its HPA (never
    both: Helm would reset the HPA's count on every upgrade)."""
    budgets = rendered.of_kind("PodDisruptionBudget")
    autoscalers = {hpa["spec"]["scaleTargetRef"]["name"] for hpa in rendered.of_kind(
        "HorizontalPodAutoscaler")}  # fmt: skip
    for deployment in rendered.of_kind("Deployment"):
        name = deployment["metadata"]["name"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets if selects(b["spec"]["selector"]["matchLabels"], labels)]
        assert len(covering) == 1, name
        assert ("replicas" in deployment["spec"]) == (name not in autoscalers), name
        assert (name in autoscalers) == (values == "production"), name


@pytest.mark.parametrize("name", SERVICES)
def test_service_probes_ask_health_and_readiness(
    rendered: Rendered, entrypoint: Any, name: str
) -> None:
    deployment = rendered.get("Deployment", object_name(name))
    [container] = pod_spec(deployment)["containers"]
    [port] = container["ports"]
    assert port["containerPort"] == entrypoint.PORT
    paths = {
        probe: (container[probe]["httpGet"]["path"], container[probe]["httpGet"]["port"])
        for probe in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    health, ready = f"/api/v1/{name}/health", f"/api/v1/{name}/ready"
    assert paths == {
        "startupProbe": (health, port["name"]),
        "livenessProbe": (health, port["name"]),
        "readinessProbe": (ready, port["name"]),
    }


def test_gateway_probes_ask_traefiks_ping_on_its_internal_port(rendered: Rendered) -> None:
    static = yaml.safe_load((GATEWAY_DIR / "traefik.yml").read_text())
    ping_port = int(
        static["entryPoints"][static["ping"]["entryPoint"]]["address"].rpartition(":")[2]
    )
    [container] = pod_spec(rendered.component("Deployment", "gateway"))["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/ping"
        assert ports[container[probe]["httpGet"]["port"]] == ping_port


@pytest.mark.parametrize("name", SERVICES)
def test_migrations_run_first_in_an_init_container(
    rendered: Rendered, entrypoint: Any, name: str
) -> None:
    """`migrate` holds the entry point's advisory lock, so pods that start together (replicas,
    a rollout) migrate one after the other; `serve` then only starts uvicorn."""
    spec = pod_spec(rendered.get("Deployment", object_name(name)))
    [init] = spec["initContainers"]
    [main] = spec["containers"]
    assert (init["args"], main["args"]) == tuple([phase] for phase in entrypoint.PHASES)
    assert "command" not in init and "command" not in main, "the image's entry point runs"
    assert init["image"] == main["image"] and init["env"] == main["env"]


def _compose_image(compose: dict[str, Any], name: str) -> str:
    """The image compose runs for a service (interpolated with the generated .env); a built
    service without `image` gets compose's own name for it, <project>-<service>."""
    return compose["services"][name].get("image") or f"{compose['name']}-{name}"


def test_image_tags_follow_the_app_version(rendered: Rendered, compose: dict[str, Any]) -> None:
    """The services' images carry the chart's appVersion (the services' version) under the
    names compose gives them; the gateway runs compose's Traefik image."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    for name in SERVICES:
        project = tomllib.loads((REPO_ROOT / "services" / name / "pyproject.toml").read_text())
        assert project["project"]["version"] == chart["appVersion"], f"{name}'s version"
        compose_name = _compose_image(compose, name).rpartition("/")[2].partition(":")[0]
        for container in containers(rendered.get("Deployment", object_name(name))):
            repository, _, tag = container["image"].rpartition(":")
            assert tag == chart["appVersion"]
            assert repository.rpartition("/")[2] == compose_name
    [traefik] = pod_spec(rendered.component("Deployment", "gateway"))["containers"]
    assert traefik["image"] == _compose_image(compose, "traefik")


# ---- secrets -------------------------------------------------------------------------------


def _secret_references(rendered: Rendered) -> set[tuple[str, str]]:
    references = set()
    for workload in rendered.workloads():
        for container in containers(workload):
            for variable in container.get("env", []):
                if "valueFrom" in variable:
                    ref = variable["valueFrom"]["secretKeyRef"]
                    references.add((ref["name"], ref["key"]))
        for volume in pod_spec(workload).get("volumes", []):
            if "secret" in volume:
                for item in volume["secret"]["items"]:
                    references.add((volume["secret"]["secretName"], item["key"]))
    return references


def test_every_secret_reference_exists(rendered: Rendered, values: str) -> None:
    references = _secret_references(rendered)
    assert references
    existing = yaml.safe_load(PRODUCTION_VALUES.read_text())["existingSecret"]
    if values == "production":
        # A Secret of the operator's: every reference names it, with a key the chart's own
        # generated Secret would hold (or smtp-password, which is never generated).
        assert rendered.of_kind("Secret") == []
        generated = render((*VALUE_SETS[values], "--set", "existingSecret="))
        [secret] = generated.of_kind("Secret")
        keys = set(secret["data"]) | {"smtp-password"}
        for name, key in references:
            assert name == existing and key in keys, (name, key)
        return
    for name, key in references:
        if key == "smtp-password":  # added to the generated Secret by hand; documented
            continue
        secret = rendered.find("Secret", name)
        assert secret is not None, f"no Secret {name}"
        assert key in secret["data"], f"Secret {name} has no {key}"


def test_generated_secrets_are_kept_on_upgrade_and_uninstall(default: Rendered) -> None:
    [secret] = default.of_kind("Secret")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    template = (CHART / "templates" / "secret.yaml").read_text()
    assert 'lookup "v1" "Secret" .Release.Namespace $name' in template
    passwords = {k: v for k, v in secret_data(secret).items() if k.endswith("password")}
    assert len(set(passwords.values())) == len(passwords) == 5
    assert all(len(value) == 32 and value.isalnum() for value in passwords.values())


@pytest.mark.parametrize("name", SERVICES)
def test_chart_environment_makes_valid_production_settings(
    default: Rendered,
    settings_classes: dict[str, type[ServiceSettings]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    name: str,
) -> None:
    """The settings each pod would build, from the variables and the generated Secret."""
    secrets = {obj["metadata"]["name"]: secret_data(obj) for obj in default.of_kind("Secret")}
    [container] = pod_spec(default.get("Deployment", object_name(name)))["containers"]
    environment = container_environment(container, secrets)
    settings_class = settings_classes[name]
    unknown = set(environment) - set(settings_class.model_fields) - set(DOCUMENTED_EXTRAS)
    assert not unknown, f"{name} is given variables its Settings do not read: {sorted(unknown)}"
    for field_name in settings_class.model_fields:
        monkeypatch.delenv(field_name, raising=False)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    if name == "auth":  # the signing key, where the Secret volume puts it
        [mount] = [m for m in container["volumeMounts"] if m["name"] == "signing-key"]
        key_file = Path(environment["AUTH_PRIVATE_KEY_FILE"])
        assert key_file.parent == Path(mount["mountPath"])
        (tmp_path / key_file.name).write_text(secrets[object_name("secrets")]["auth-private-key"])
        monkeypatch.setenv("AUTH_PRIVATE_KEY_FILE", str(tmp_path / key_file.name))
    settings = settings_class(_env_file=None)
    assert settings.ENVIRONMENT == "production" and settings.SERVICE_NAME == name
    database = urlsplit(settings.DATABASE_URL)
    password = secrets[object_name("secrets")][f"{name}-database-password"]
    assert (database.username, database.password, database.path) == (name, password, f"/{name}")
    assert urlsplit(settings.JWKS_URL).hostname == object_name("auth")
    if name == "auth":
        from auth.keyring import load_keyring

        keyring = load_keyring(settings)
        assert keyring.jwks["keys"][0]["alg"] == settings.AUTH_ALGORITHM


# ---- the gateway ---------------------------------------------------------------------------


def test_gateway_configuration_is_the_gateway_directory(rendered: Rendered) -> None:
    """One source: the ConfigMap holds gateway/*.yml byte for byte, mounted where compose
    mounts the directory, so Traefik finds traefik.yml and its file provider dynamic.yml."""
    config = rendered.component("ConfigMap", "gateway")
    assert config["data"] == {path.name: path.read_text() for path in GATEWAY_DIR.glob("*.yml")}
    deployment = rendered.component("Deployment", "gateway")
    [container] = pod_spec(deployment)["containers"]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "config"]
    [volume] = [v for v in pod_spec(deployment)["volumes"] if v["name"] == "config"]
    assert volume["configMap"]["name"] == config["metadata"]["name"]
    assert mount["mountPath"] == "/etc/traefik" and "args" not in container
    static = yaml.safe_load(config["data"]["traefik.yml"])
    assert static["providers"]["file"]["filename"] == "/etc/traefik/dynamic.yml"
    web = int(static["entryPoints"]["web"]["address"].rpartition(":")[2])
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    service = rendered.component("Service", "gateway")
    [service_port] = service["spec"]["ports"]
    assert ports[service_port["targetPort"]] == web, "the Service sends clients to `web`"


def test_the_chart_packs_the_gateway_files_themselves(tmp_path: Path) -> None:
    """`helm package` follows the symbolic links: a packaged chart still holds gateway/."""
    result = helm("package", str(CHART), "--destination", str(tmp_path))
    assert result.returncode == 0, result.stderr
    [package] = tmp_path.glob("platform-*.tgz")
    rendered = render(chart=package)
    assert (
        rendered.component("ConfigMap", "gateway")["data"]["dynamic.yml"]
        == (GATEWAY_DIR / "dynamic.yml").read_text()
    )


def _route_table(http: dict[str, Any]) -> dict[str, Any]:
    return {"routers": http["routers"], "middlewares": http["middlewares"]}


def test_rendered_route_table_equals_compose_and_native(rendered: Rendered, values: str) -> None:
    """dynamic.yml as the chart's Traefik renders it (its environment) against compose's
    rendering: the same routers and middlewares; the upstreams are this release's Services."""
    from devstack import traefik as native

    assert native.DYNAMIC_CONFIG.resolve() == (GATEWAY_DIR / "dynamic.yml").resolve()
    deployment = rendered.component("Deployment", "gateway")
    [container] = pod_spec(deployment)["containers"]
    chart_env = container_environment(container, {})
    text = rendered.component("ConfigMap", "gateway")["data"]["dynamic.yml"]
    chart_http = render_dynamic_config(text, chart_env)["http"]
    # compose's own defaults (.env may override them; the defaults are what it ships)
    compose_env = interpolate(load_compose_raw()["services"]["traefik"]["environment"], {})
    compose_http = render_dynamic_config((GATEWAY_DIR / "dynamic.yml").read_text(), compose_env)
    expected = copy.deepcopy(_route_table(compose_http["http"]))
    limit = expected["middlewares"]["auth-ratelimit"]["rateLimit"]
    limit["average"] = int(chart_env["GATEWAY_AUTH_RATE_AVERAGE"])
    limit["burst"] = int(chart_env["GATEWAY_AUTH_RATE_BURST"])
    assert _route_table(chart_http) == expected
    if values == "default":
        assert expected == _route_table(compose_http["http"]), "the defaults are compose's"
    # Every upstream is a Service of this release, on the port uvicorn listens on, selecting
    # the service's pods; or Traefik's own internal entry point.
    assert chart_http["services"].keys() == compose_http["http"]["services"].keys()
    for service in chart_http["services"].values():
        for server in service["loadBalancer"]["servers"]:
            url = urlsplit(server["url"])
            if url.hostname == "127.0.0.1":
                continue
            target = rendered.get("Service", str(url.hostname))
            [port] = target["spec"]["ports"]
            assert port["port"] == url.port
            component = target["spec"]["selector"]["app.kubernetes.io/component"]
            assert component in SERVICES
            pods = rendered.get("Deployment", object_name(component))["spec"]["template"]
            assert selects(target["spec"]["selector"], pods["metadata"]["labels"])
    for name in SERVICES:
        [server] = chart_http["services"][name]["loadBalancer"]["servers"]
        assert server["url"] == f"http://{object_name(name)}:8000"


def test_a_gateway_change_rolls_the_gateway_pods(tmp_path: Path, default: Rendered) -> None:
    chart = tmp_path / "platform"
    shutil.copytree(CHART, chart)  # the links followed: a copy of gateway/ to edit
    with (chart / "files" / "gateway" / "dynamic.yml").open("a") as dynamic:
        dynamic.write("# changed\n")
    changed = render(chart=chart)

    def annotations(rendered: Rendered, kind: str, name: str) -> dict[str, str]:
        return dict(rendered.get(kind, name)["spec"]["template"]["metadata"]["annotations"])

    gateway = object_name("gateway")
    before = annotations(default, "Deployment", gateway)["checksum/config"]
    assert before != annotations(changed, "Deployment", gateway)["checksum/config"]
    for name in SERVICES:
        assert "checksum/secret" in annotations(default, "Deployment", object_name(name))


# ---- network policies ----------------------------------------------------------------------


def _pod_labels(rendered: Rendered, component: str) -> dict[str, str]:
    for workload in rendered.workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        if labels["app.kubernetes.io/component"] == component:
            return dict(labels)
    raise AssertionError(f"no workload {component}")


def _policy_for(rendered: Rendered, component: str) -> dict[str, Any]:
    labels = _pod_labels(rendered, component)
    [policy] = [
        policy
        for policy in rendered.of_kind("NetworkPolicy")
        if selects(policy["spec"]["podSelector"]["matchLabels"], labels)
    ]
    return policy


def _peers(rendered: Rendered, rule: dict[str, Any]) -> set[str]:
    """The components a rule's `from`/`to` pod selectors pick (only pod selectors here)."""
    found = set()
    for peer in rule.get("from", rule.get("to", [])):
        assert "podSelector" in peer and "namespaceSelector" not in peer, peer
        for workload in rendered.workloads():
            labels = workload["spec"]["template"]["metadata"]["labels"]
            if selects(peer["podSelector"]["matchLabels"], labels):
                found.add(labels["app.kubernetes.io/component"])
    return found


@pytest.mark.parametrize("name", SERVICES)
def test_only_the_gateway_reaches_a_service(rendered: Rendered, name: str) -> None:
    policy = _policy_for(rendered, name)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    [rule] = policy["spec"]["ingress"]
    # auth also serves its key set (JWKS_URL) to the other services.
    expected = {"gateway"} | (set(SERVICES) - {"auth"} if name == "auth" else set())
    assert _peers(rendered, rule) == expected
    assert rule["ports"] == [{"port": 8000, "protocol": "TCP"}]


def test_only_the_services_reach_the_in_chart_stores(rendered: Rendered, values: str) -> None:
    stores = {"postgresql": 5432, "redis": 6379}
    present = [s for s in stores if any(w["metadata"]["name"] == object_name(s)
                                        for w in rendered.workloads())]  # fmt: skip
    assert present == (list(stores) if values == "in-chart" else [])
    for store in present:
        [rule] = _policy_for(rendered, store)["spec"]["ingress"]
        assert _peers(rendered, rule) == set(SERVICES)
        assert rule["ports"] == [{"port": stores[store], "protocol": "TCP"}]


def test_the_gateway_reaches_only_the_services_and_dns(rendered: Rendered) -> None:
    policy = _policy_for(rendered, "gateway")
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    [ingress] = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": 8000, "protocol": "TCP"}], "never the internal port"
    services_rule, dns_rule = policy["spec"]["egress"]
    assert _peers(rendered, services_rule) == set(SERVICES)
    assert services_rule["ports"] == [{"port": 8000, "protocol": "TCP"}]
    assert {port["port"] for port in dns_rule["ports"]} == {53}
    [dns] = dns_rule["to"]
    assert dns["namespaceSelector"] and dns["podSelector"], "DNS pods only, not a namespace"


def test_forwarded_allow_ips_are_understood_by_uvicorn(rendered: Rendered, values: str) -> None:
    """What the chart passes to --forwarded-allow-ips means what values.yaml says."""
    from uvicorn.middleware.proxy_headers import _TrustedHosts

    [container] = pod_spec(rendered.get("Deployment", object_name("items")))["containers"]
    [allowed] = [v["value"] for v in container["env"] if v["name"] == "FORWARDED_ALLOW_IPS"]
    trusted = _TrustedHosts(allowed)
    if values == "production":  # the pod network only
        assert "10.244.7.9" in trusted and "192.0.2.1" not in trusted
    else:  # anyone who can connect: the NetworkPolicy lets only the gateway
        assert trusted.always_trust
        assert _policy_for(rendered, "items")["spec"]["ingress"]


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("gateway.replica=3", "additional properties 'replica' not allowed"),
        ("serviceDefaults.logLevel=LOUD", "value must be one of"),
        ("publicUrl=api.example.com", "/publicUrl"),
    ],
)
def test_a_misspelt_or_wrong_value_is_refused(setting: str, complaint: str) -> None:
    """values.schema.json: a typo in --set fails the install instead of being ignored."""
    result = helm("template", "rel", str(CHART), "--set", setting)
    assert result.returncode != 0
    assert complaint in result.stderr


def test_a_service_overrides_the_defaults_alone() -> None:
    """services.<name> overrides serviceDefaults for that service only, key by key."""
    rendered = render(("--values", str(PRODUCTION_VALUES)))
    production = yaml.safe_load(PRODUCTION_VALUES.read_text())
    defaults, auth = production["serviceDefaults"], production["services"]["auth"]
    for name in SERVICES:
        [container] = pod_spec(rendered.get("Deployment", object_name(name)))["containers"]
        expected = auth["resources"] if name == "auth" else defaults["resources"]
        assert container["resources"] == expected, name
        environment = {variable["name"]: variable.get("value") for variable in container["env"]}
        assert environment["LOG_LEVEL"] == defaults["logLevel"], "a default kept beside overrides"
        assert ("ACCESS_TOKEN_TTL" in environment) == (name == "auth")
