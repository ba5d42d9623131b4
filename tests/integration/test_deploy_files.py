"""docker-compose.yml, the Dockerfile and the Helm chart are valid and agree with the code:
every KEELWATCH_* variable they set is a real settings field with a value that parses, and
every command they run parses as a real ``keelwatch`` (or ``mlflow server``) command line."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import yaml

from keelwatch.cli.environment import iter_env_vars
from keelwatch.settings import Settings
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
CHART_DIR = REPO_ROOT / "charts" / "keelwatch"
PROMETHEUS_FILE = REPO_ROOT / "deploy" / "prometheus.yml"
KUBE_VERSION = "1.30.0"
ENV_NAME = re.compile(r"\bKEELWATCH_[A-Z0-9_]+\b")
EXPECTED_SERVICES = {
    "postgres",
    "redis",
    "mlflow",
    "migrate",
    "api",
    "worker-cpu",
    "worker-monitoring",
    "worker-gpu",
    "beat",
    "prometheus",
}
#: Values a real install needs: the chart refuses to render without shared storage.
SHARED_VALUES: dict[str, Any] = {"sharedStorage": {"enabled": True}}


def known_env_vars() -> set[str]:
    """Every variable the settings tree reads."""
    return {var.name for var in iter_env_vars()}


def unknown_env_vars(names: set[str]) -> set[str]:
    """Names that map to no settings field."""
    return names - known_env_vars()


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Build Settings from exactly ``env`` (no other KEELWATCH_* variable)."""
    import os

    for name in list(os.environ):
        if name.startswith("KEELWATCH_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    return Settings()


def parse_command_line(command: Any, args: Sequence[str], parent: Any = None) -> Any:
    """Parse ``args`` like the CLI would (options, types, subcommands) without running it;
    returns the leaf command.

    Duck-typed: Typer ships its own copy of Click, MLflow uses Click itself.
    """
    ctx = command.make_context(command.name or "cli", list(args), parent=parent)
    if not hasattr(command, "resolve_command"):
        return command
    # The subcommand name sits in `_protected_args` in Click 8.2+ and in Typer's copy alike
    # (the public `protected_args` is deprecated in one and absent from the other).
    rest = [*ctx._protected_args, *ctx.args]
    name, sub, sub_args = command.resolve_command(ctx, rest)
    assert sub is not None, f"unknown command {name!r}"
    return parse_command_line(sub, sub_args, ctx)


def keelwatch_command() -> Any:
    import typer

    from keelwatch.cli.app import app

    return typer.main.get_command(app)


# --------------------------------------------------------------------------- docker-compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml with YAML anchors resolved."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_compose_file_is_valid_for_docker_compose() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_compose_structure(compose: dict[str, Any]) -> None:
    # The schema-level checks that hold whether or not docker-compose is installed.
    services = compose["services"]
    assert set(services) == EXPECTED_SERVICES
    for name in ("api", "worker-cpu", "worker-monitoring", "worker-gpu", "beat"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
    assert services["migrate"]["command"][:2] == ["db", "upgrade"]
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"
    assert "gpu" in devices[0]["capabilities"]
    for name in ("postgres", "redis", "mlflow", "api", "worker-cpu", "worker-monitoring"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    assert "healthcheck" in services["prometheus"]
    mlflow_args = services["mlflow"]["command"]
    backend = mlflow_args[mlflow_args.index("--backend-store-uri") + 1]
    assert backend.startswith("postgresql")
    assert any("mlflow-artifacts" in v for v in services["mlflow"]["volumes"])


def compose_environments(compose: dict[str, Any]) -> Iterator[tuple[str, dict[str, str]]]:
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        yield name, {k: str(v) for k, v in env.items()}


def test_compose_env_vars_are_settings_fields(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    names = set(ENV_NAME.findall(COMPOSE_FILE.read_text()))
    assert "KEELWATCH_DATABASE__URL" in names
    assert unknown_env_vars(names) == set()
    for service, env in compose_environments(compose):
        keelwatch_env = {k: v for k, v in env.items() if k.startswith("KEELWATCH_")}
        if not keelwatch_env:
            continue
        settings = settings_from(keelwatch_env, monkeypatch)
        assert settings.database.url.startswith("postgresql://"), service
        assert settings.broker.url.startswith("redis://redis:6379"), service
        assert settings.mlflow.tracking_uri == "http://mlflow:5000", service
    workers = dict(compose_environments(compose))
    assert workers["worker-cpu"]["KEELWATCH_WORKER__METRICS_PORT"] == "9100"
    assert workers["worker-monitoring"]["KEELWATCH_WORKER__METRICS_PORT"] == "9100"


def test_compose_consumes_every_queue_the_platform_sends_to(compose: dict[str, Any]) -> None:
    # Drift checks, dispatch_due and the heartbeat go to `monitoring`: some service must
    # consume it, and cpu too, without the optional gpu profile.
    from keelwatch.cli.commands import ROLE_QUEUES

    consumed: set[str] = set()
    for service in compose["services"].values():
        command = service.get("command") or []
        if command[:1] != ["worker"] or "profiles" in service:
            continue
        role = command[command.index("--role") + 1]
        consumed.update(ROLE_QUEUES[role])
    assert {"cpu", "monitoring"} <= consumed
    shared = "shared:/var/lib/keelwatch/shared"
    for name in ("api", "worker-cpu", "worker-monitoring", "worker-gpu"):
        assert shared in compose["services"][name]["volumes"], name


def test_compose_commands_parse(compose: dict[str, Any]) -> None:
    cli = keelwatch_command()
    for service in compose["services"].values():
        image = service.get("image", "")
        if not image.startswith("keelwatch") or "entrypoint" in service:
            continue
        parse_command_line(cli, service["command"])
    # The MLflow service runs `mlflow server` from our image: its flags must exist.
    from mlflow.cli import cli as mlflow_cli

    mlflow = compose["services"]["mlflow"]
    assert mlflow["entrypoint"] == ["mlflow", "server"]
    parse_command_line(mlflow_cli, ["server", *mlflow["command"]])


def test_parser_rejects_a_misspelt_option() -> None:
    # The command checks above must be able to fail.
    with pytest.raises(Exception, match="No such option"):
        parse_command_line(keelwatch_command(), ["worker", "--concurency", "2"])
    with pytest.raises(Exception, match="No such command"):
        parse_command_line(keelwatch_command(), ["wrker"])
    with pytest.raises(Exception, match="valid integer"):
        parse_command_line(keelwatch_command(), ["api", "--port", "http"])
    assert parse_command_line(keelwatch_command(), ["db", "upgrade"]).name == "upgrade"


def test_unknown_env_var_is_detected() -> None:
    assert unknown_env_vars({"KEELWATCH_DATABASE__URL", "KEELWATCH_DATABASE__URI"}) == {
        "KEELWATCH_DATABASE__URI"
    }


def test_prometheus_scrapes_api_and_workers(compose: dict[str, Any]) -> None:
    config = yaml.safe_load(PROMETHEUS_FILE.read_text())
    targets = {
        job["job_name"]: [t for group in job["static_configs"] for t in group["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets["keelwatch-api"] == ["api:8000"]
    assert "worker-cpu:9100" in targets["keelwatch-workers"]
    assert "worker-monitoring:9100" in targets["keelwatch-workers"]
    mounted = compose["services"]["prometheus"]["volumes"][0]
    assert mounted.startswith("./deploy/prometheus.yml:")


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_env_vars_and_user() -> None:
    text = DOCKERFILE.read_text()
    assert text.splitlines()[0].startswith("#")
    assert re.search(r"^FROM python:3\.11-slim", text, re.MULTILINE)
    assert re.search(r"^USER keelwatch$", text, re.MULTILINE)
    assert "pip install" in text
    assert unknown_env_vars(set(ENV_NAME.findall(text))) == set()
    entrypoint = re.search(r'^ENTRYPOINT \["keelwatch"\]$', text, re.MULTILINE)
    assert entrypoint
    cmd = re.search(r"^CMD (\[.*\])$", text, re.MULTILINE)
    assert cmd
    parse_command_line(keelwatch_command(), yaml.safe_load(cmd.group(1)))


# --------------------------------------------------------------------------- Helm chart


def render_chart(values: dict[str, Any] | None = SHARED_VALUES) -> list[dict[str, Any]]:
    """Rendered manifests (offline, like ``helm template``); shared storage on by default."""
    helm = pytest.importorskip("helm_python")
    chart = helm.Chart.load(str(CHART_DIR))
    rendered = chart.render(values, name="kw", namespace="ml", is_install=True)
    documents: list[dict[str, Any]] = []
    for path, text in rendered.items():
        if path.endswith("NOTES.txt"):
            continue
        documents.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return documents


def containers(documents: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in documents:
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []):
            yield doc["metadata"]["name"], container


def test_chart_yaml_and_values_parse() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "keelwatch"
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert unknown_env_vars(set(values["env"])) == set()
    templates = {p.name for p in (CHART_DIR / "templates").iterdir()}
    assert {"configmap.yaml", "api-deployment.yaml", "migrate-job.yaml"} <= templates


def test_chart_lints_clean() -> None:
    helm = pytest.importorskip("helm_python")
    report = helm.lint(str(CHART_DIR), SHARED_VALUES, strict=True)
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == []


@pytest.mark.parametrize(
    "values",
    [
        SHARED_VALUES,
        {
            "existingSecret": "kw-secrets",
            "beat": {"enabled": False},
            "sharedStorage": {"enabled": True, "existingClaim": "kw-nfs"},
        },
    ],
    ids=["shared-storage", "secret-no-beat-existing-claim"],
)
def test_chart_renders_valid_kubernetes_objects(
    values: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    documents = render_chart(values)
    kinds = sorted((doc["kind"], doc["metadata"]["name"]) for doc in documents)
    expected = [
        ("ConfigMap", "kw-keelwatch-config"),
        ("Deployment", "kw-keelwatch-api"),
        ("Deployment", "kw-keelwatch-worker-cpu"),
        ("Deployment", "kw-keelwatch-worker-monitoring"),
        ("Job", "kw-keelwatch-migrate"),
        ("Secret", "kw-keelwatch-auth"),
        ("Service", "kw-keelwatch-api"),
    ]
    if values is SHARED_VALUES:
        expected.append(("Deployment", "kw-keelwatch-beat"))
        expected.append(("PersistentVolumeClaim", "kw-keelwatch-shared"))
    assert kinds == sorted(expected)
    for doc in documents:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)

    by_kind = {(doc["kind"], doc["metadata"]["name"]): doc for doc in documents}
    job = by_kind[("Job", "kw-keelwatch-migrate")]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"

    # Every KEELWATCH_* variable the chart sets is a settings field, and the set parses.
    config = by_kind[("ConfigMap", "kw-keelwatch-config")]["data"]
    assert unknown_env_vars(set(config)) == set()
    settings = settings_from(config, monkeypatch)
    assert settings.api.host == "0.0.0.0"
    cli = keelwatch_command()
    for name, container in containers(documents):
        env_names = {e["name"] for e in container.get("env", [])}
        assert unknown_env_vars({n for n in env_names if n.startswith("KEELWATCH_")}) == set()
        parse_command_line(cli, container["args"])
        sources = container.get("envFrom", [])
        if name.endswith("-migrate"):
            # The hook runs before the ConfigMap exists: it carries its env inline.
            assert "KEELWATCH_DATABASE__URL" in env_names
        else:
            assert {"configMapRef": {"name": "kw-keelwatch-config"}} in sources
        if values.get("existingSecret"):
            assert {"secretRef": {"name": "kw-secrets"}} in sources


def auth_secret_refs(documents: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per Deployment: the ``KEELWATCH_AUTH__SECRET`` source of each of its containers."""
    refs: dict[str, list[dict[str, Any]]] = {}
    for doc in documents:
        if doc["kind"] != "Deployment":
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            source = env.get("KEELWATCH_AUTH__SECRET", {}).get("valueFrom", {})
            refs.setdefault(doc["metadata"]["name"], []).append(source)
    return refs


def test_every_api_replica_worker_and_beat_reads_one_auth_secret() -> None:
    documents = render_chart()
    api = next(d for d in documents if d["metadata"]["name"] == "kw-keelwatch-api")
    assert api["spec"]["replicas"] == 2  # one pod template: every replica gets the same env
    expected = {"secretKeyRef": {"name": "kw-keelwatch-auth", "key": "auth-secret"}}
    refs = auth_secret_refs(documents)
    assert set(refs) == {
        "kw-keelwatch-api",
        "kw-keelwatch-beat",
        "kw-keelwatch-worker-cpu",
        "kw-keelwatch-worker-monitoring",
    }
    assert all(sources == [expected] for sources in refs.values()), refs
    (secret,) = [d for d in documents if d["kind"] == "Secret"]
    assert secret["metadata"]["name"] == "kw-keelwatch-auth"
    # Kept on uninstall and generated once (an upgrade reads it back with lookup).
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    value = base64.b64decode(secret["data"]["auth-secret"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{64}", value)
    template = (CHART_DIR / "templates" / "auth-secret.yaml").read_text()
    assert 'lookup "v1" "Secret"' in template

    # A Secret of the operator's: referenced by every pod, and the chart makes none.
    own = render_chart({**SHARED_VALUES, "auth": {"existingSecret": "kw-auth", "secretKey": "k"}})
    assert not [d for d in own if d["kind"] == "Secret"]
    mine = {"secretKeyRef": {"name": "kw-auth", "key": "k"}}
    assert all(sources == [mine] for sources in auth_secret_refs(own).values())


def test_chart_runs_a_monitoring_worker_started_like_the_cpu_worker() -> None:
    documents = render_chart()
    args = {name: container["args"] for name, container in containers(documents)}
    monitoring = args["kw-keelwatch-worker-monitoring"]
    assert monitoring[:3] == ["worker", "--role", "monitoring"]
    # The same command line as the cpu worker, but for its role.
    assert args["kw-keelwatch-worker-cpu"][:3] == ["worker", "--role", "cpu"]
    assert monitoring[3:] == [
        a.replace("cpu", "monitoring") for a in args["kw-keelwatch-worker-cpu"][3:]
    ]
    from keelwatch.cli.commands import ROLE_QUEUES

    role = monitoring[monitoring.index("--role") + 1]
    assert ROLE_QUEUES[role] == ("monitoring",)
    deployment = next(
        d for d in documents if d["metadata"]["name"] == "kw-keelwatch-worker-monitoring"
    )
    assert deployment["spec"]["replicas"] >= 1
    # Scaling it to zero is a values choice, not a missing template.
    scaled = render_chart({**SHARED_VALUES, "workerMonitoring": {"replicas": 0}})
    names = {d["metadata"]["name"]: d for d in scaled}
    assert names["kw-keelwatch-worker-monitoring"]["spec"]["replicas"] == 0


def test_chart_refuses_to_render_without_shared_storage() -> None:
    helm = pytest.importorskip("helm_python")
    chart = helm.Chart.load(str(CHART_DIR))
    with pytest.raises(Exception, match=r"sharedStorage\.enabled=true is required") as refused:
        chart.render(None, name="kw", namespace="ml", is_install=True)
    assert "ReadWriteMany" in str(refused.value)
    assert "acknowledgeNoSharing" in str(refused.value)
    with pytest.raises(Exception, match="must include ReadWriteMany"):
        chart.render(
            {"sharedStorage": {"enabled": True, "accessModes": ["ReadWriteOnce"]}},
            name="kw",
            namespace="ml",
            is_install=True,
        )
    # The explicit waiver renders, with no shared volume anywhere.
    waived = render_chart({"sharedStorage": {"acknowledgeNoSharing": True}})
    assert not [d for d in waived if d["kind"] == "PersistentVolumeClaim"]
    for _name, container in containers(waived):
        assert all(m["name"] != "shared" for m in container.get("volumeMounts", []))


def test_chart_shared_storage_is_rwx_and_mounted_in_every_pod(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    documents = render_chart(
        {"sharedStorage": {"enabled": True, "storageClassName": "nfs", "size": "10Gi"}}
    )
    claim = next(d for d in documents if d["kind"] == "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["storageClassName"] == "nfs"
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    mount_path = "/var/lib/keelwatch/shared"
    pods = 0
    for doc in documents:
        if doc["kind"] != "Deployment":
            continue
        pods += 1
        spec = doc["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["shared"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        for container in spec["containers"]:
            mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
            assert mounts["shared"] == mount_path, doc["metadata"]["name"]
    assert pods == 4  # api, beat, worker-cpu, worker-monitoring
    # Job outputs go to the shared volume.
    config = next(d for d in documents if d["kind"] == "ConfigMap")["data"]
    settings = settings_from(config, monkeypatch)
    assert settings.inference.output_dir == f"{mount_path}/outputs"
