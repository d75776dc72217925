"""The deployment files against the code they deploy, and through their linters.

``Containerfile``, ``deploy/compose.yaml`` and ``deploy/k8s/*.yaml`` (see docs/scaling.md):

* every ``PALETTE_*`` variable they set is one that ``Settings.from_env`` reads, and each
  process's whole environment (the image's, then the file's, secrets from the committed
  placeholders) builds valid ``Settings``, with what Redis + S3 mode needs;
* every command they run parses with the ``palette`` command's own parser, as an API node
  (``serve --workers 0``) or a worker, in the numbers the topology asks for;
* shutdown grace periods cover the drain the settings ask for;
* hadolint, kubernetes-validate and check-jsonschema (the Compose specification's schema) pass.
  They come from requirements/test.lock and work offline (their rules and schemas ship in their
  wheels); a missing one fails the test, it is never skipped.

No container runtime is needed: tests/scale/test_topology.py runs the same topology as
processes on loopback.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from palette_native.cli import build_parser
from service import cli as service_cli
from service.backends import SHARED_SECRETS
from service.routes.ops import routes as ops_routes
from service.settings import Settings
from service.signed_urls import SigningKeys

REPO = Path(__file__).resolve().parent.parent
CONTAINERFILE = REPO / "Containerfile"
COMPOSE = REPO / "deploy" / "compose.yaml"
ENV_EXAMPLE = REPO / "deploy" / "env.example"
K8S_DIR = REPO / "deploy" / "k8s"
K8S_FILES = sorted(K8S_DIR.glob("*.yaml"))
IMAGE = "palette-engine"  # the image built from CONTAINERFILE, in compose and the manifests

PLACEHOLDER = "CHANGE-ME"
S3_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
# `palette serve` gives uvicorn int(PALETTE_DRAIN_GRACE_SECONDS) + 5 s for requests in flight
# (service/cli.py); `palette worker` notices SIGTERM within its 1 s wait.
SERVE_SHUTDOWN_EXTRA_S = 5
WORKER_SIGNAL_POLL_S = 1
MARGIN_S = 5


# -- what the code accepts -------------------------------------------------------------------


class _ReadRecorder(Mapping[str, str]):
    """An empty environment that remembers every name looked up in it."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.names.add(name)
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:
        self.names.add(name)
        return default

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.names.add(name)
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def setting_names() -> frozenset[str]:
    """The ``PALETTE_*`` names ``Settings.from_env`` reads, nested settings included: found by
    letting it read an empty environment, so the list can never drift from the code."""
    recorder = _ReadRecorder()
    Settings.from_env(recorder)
    return frozenset(name for name in recorder.names if name.startswith("PALETTE_"))


def test_setting_names_are_what_from_env_reads() -> None:
    names = setting_names()
    # Each top-level field is PALETTE_<FIELD>; the nested ones have names of their own.
    for f in dataclasses.fields(Settings):
        if f.name not in ("webhooks", "security"):
            assert "PALETTE_" + f.name.upper() in names
    assert {"PALETTE_WEBHOOK_CALLBACK_SECRET", "PALETTE_EGRESS_ALLOW_CIDRS"} <= names
    assert {"PALETTE_URL_SIGNING_KEYS", "PALETTE_RATE_LIMITS", "PALETTE_ENCRYPTION_KEYS"} <= names


# -- reading the files -----------------------------------------------------------------------


def containerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line: continuations joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in CONTAINERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # also a comment line inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, rest = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


@dataclass(frozen=True)
class Image:
    environment: dict[str, str]
    entrypoint: list[str]
    command: list[str]


def image() -> Image:
    """The final stage's environment, ENTRYPOINT and CMD (exec form)."""
    instructions = containerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    environment: dict[str, str] = {}
    entrypoint: list[str] = []
    command: list[str] = []
    for keyword, rest in instructions[last_from:]:
        if keyword == "ENV":
            for item in shlex.split(rest):
                name, sep, value = item.partition("=")
                assert sep, f"Containerfile: write ENV as NAME=value, got {item!r}"
                environment[name] = value
        elif keyword == "ENTRYPOINT":
            entrypoint = json.loads(rest)
        elif keyword == "CMD":
            command = json.loads(rest)
    return Image(environment, entrypoint, command)


def containerfile_variables() -> dict[str, str]:
    """Every ENV of every stage."""
    found: dict[str, str] = {}
    for keyword, rest in containerfile_instructions():
        if keyword == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                found[name] = value
    return found


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"deploy/env.example: not NAME=value: {line!r}"
            values[name] = value
    return values


_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[?-])?(?P<arg>[^}]*)\}"
)


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:?message}`` and ``${NAME:-default}`` (the forms used)."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        if name in variables and (variables[name] or not (op or "").startswith(":")):
            return variables[name]
        if op in (":-", "-"):
            return arg
        raise AssertionError(f"compose.yaml uses ${{{name}}}, which deploy/env.example lacks")

    return _INTERPOLATION.sub(one, text)


def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def palette_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose()["services"]
    ours = {name: s for name, s in services.items() if str(s.get("image", "")).startswith(IMAGE)}
    assert ours, f"no service of compose.yaml runs the {IMAGE} image"
    return ours


def k8s_documents() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in K8S_FILES:
        documents += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    return documents


def k8s_of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in k8s_documents() if d["kind"] == kind]


def k8s_palette_containers() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(Deployment, container) for each container running the image."""
    for deployment in k8s_of_kind("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if container["image"].startswith(IMAGE):
                yield deployment, container


def k8s_environment(container: Mapping[str, Any]) -> dict[str, str]:
    """The image's environment, then envFrom (ConfigMaps, Secrets), then env: as the kubelet."""
    config_maps = {d["metadata"]["name"]: d.get("data", {}) for d in k8s_of_kind("ConfigMap")}
    secrets = {d["metadata"]["name"]: d.get("stringData", {}) for d in k8s_of_kind("Secret")}
    environment = dict(image().environment)
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            environment.update(config_maps[source["configMapRef"]["name"]])
        else:
            environment.update(secrets[source["secretRef"]["name"]])
    for item in container.get("env", []):
        assert "value" in item, f"env {item['name']}: only plain values are checked here"
        environment[item["name"]] = item["value"]
    return environment


def compose_environment(service: Mapping[str, Any]) -> dict[str, str]:
    environment = dict(image().environment)
    variables = env_example()
    raw = service.get("environment", {})
    assert isinstance(raw, dict), "compose.yaml: write environment as a mapping"
    environment.update({k: interpolate(str(v), variables) for k, v in raw.items()})
    return environment


# -- (a) every PALETTE_* variable is a setting, and every process's settings parse ------------


def variables_set_by_each_file() -> Iterator[tuple[str, str, str]]:
    """(file, variable, raw value) for every variable a deployment file sets."""
    for name, value in containerfile_variables().items():
        yield "Containerfile", name, value
    for service_name, service in compose()["services"].items():
        for name, value in (service.get("environment") or {}).items():
            yield f"compose.yaml:{service_name}", name, str(value)
    for name, value in env_example().items():
        yield "env.example", name, value
    for document in k8s_documents():
        where = f"k8s/{document['kind']}/{document['metadata']['name']}"
        for name, value in {**document.get("data", {}), **document.get("stringData", {})}.items():
            yield where, name, str(value)
        if document["kind"] == "Deployment":
            for container in document["spec"]["template"]["spec"]["containers"]:
                for item in container.get("env", []):
                    yield where, item["name"], str(item.get("value"))


def test_every_palette_variable_is_a_setting() -> None:
    known = setting_names()
    unknown = sorted(
        f"{where}: {name}"
        for where, name, _ in variables_set_by_each_file()
        if name.startswith("PALETTE_") and name not in known
    )
    assert not unknown, f"not read by Settings.from_env (typo or removed setting?): {unknown}"
    assert any(name.startswith("PALETTE_") for _, name, _ in variables_set_by_each_file())


def processes() -> Iterator[tuple[str, dict[str, str], list[str]]]:
    """(where, environment, argv) of every PaletteEngine process the files start."""
    img = image()
    yield "Containerfile", dict(img.environment), img.entrypoint + img.command
    for name, service in palette_services().items():
        entrypoint = service.get("entrypoint", img.entrypoint)
        command = service.get("command", img.command)
        assert isinstance(command, list), f"compose.yaml {name}: write command as a list"
        yield f"compose.yaml:{name}", compose_environment(service), [*entrypoint, *command]
    for deployment, container in k8s_palette_containers():
        argv = [*container.get("command", img.entrypoint), *container.get("args", img.command)]
        where = f"k8s/{deployment['metadata']['name']}/{container['name']}"
        yield where, k8s_environment(container), argv


PROCESSES = {where: (environment, argv) for where, environment, argv in processes()}


@pytest.mark.parametrize("where", sorted(PROCESSES))
def test_settings_build_from_each_process_environment(where: str) -> None:
    environment, _ = PROCESSES[where]
    settings = Settings.from_env(environment)
    assert settings.host == "0.0.0.0", "inside a container the server must listen on all addresses"
    assert str(settings.data_dir) == "/data"
    if where == "Containerfile":
        assert not settings.store and not settings.blobs  # the image alone: embedded mode
        return
    # Redis + S3 mode: the shared secrets every node must hold, well formed, and S3's variables.
    assert settings.store.startswith("redis://"), settings.store
    assert settings.blobs.startswith("s3://"), settings.blobs
    assert all(environment.get(name) for name in SHARED_SECRETS), SHARED_SECRETS
    SigningKeys.parse(settings.url_signing_keys)
    assert all(environment.get(name) for name in S3_VARIABLES), S3_VARIABLES


def test_every_process_shares_the_same_settings() -> None:
    """All nodes of one deployment agree (a link signed on one verifies on all...)."""
    for prefix in ("compose.yaml:", "k8s/"):
        views = {
            where: {k: v for k, v in env.items() if k != "PALETTE_WORKERS"}
            for where, (env, _) in PROCESSES.items()
            if where.startswith(prefix)
        }
        first = next(iter(views.values()))
        assert all(view == first for view in views.values()), views


def test_committed_secrets_are_placeholders() -> None:
    secret_names = {*SHARED_SECRETS, "AWS_SECRET_ACCESS_KEY", "S3_SECRET_KEY"}
    for name, value in env_example().items():
        if name in secret_names:
            assert PLACEHOLDER in value, f"env.example {name}: commit placeholders only"
    for secret in k8s_of_kind("Secret"):
        assert "data" not in secret, "k8s Secret: placeholders as stringData, never encoded data"
        for name, value in secret.get("stringData", {}).items():
            assert PLACEHOLDER in value, f"k8s Secret {name}: commit placeholders only"
    for service_name, service in compose()["services"].items():
        for name, value in (service.get("environment") or {}).items():
            if name in secret_names:
                assert str(value).startswith("${"), f"compose {service_name} {name}: from .env"
    for config_map in k8s_of_kind("ConfigMap"):
        leaked = secret_names & set(config_map.get("data", {}))
        assert not leaked, f"secrets belong in the Secret, not ConfigMap: {leaked}"


# -- (b) the commands are real commands of the `palette` CLI -----------------------------------


def parse_palette(where: str, argv: list[str]) -> Any:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    assert argv and argv[0] == "palette", f"{where}: runs {argv}, not the palette command"
    assert scripts["palette"] == "palette_native.cli:main"
    try:
        return build_parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"{where}: `{shlex.join(argv)}` is not a valid palette command (see above)")


def role(where: str, argv: list[str]) -> str:
    args = parse_palette(where, argv)
    if args.handler is service_cli.serve:
        return "api" if args.workers == 0 else "serve"
    assert args.handler is service_cli.worker, f"{where}: {argv} is neither serve nor worker"
    assert args.workers != 0, f"{where}: palette worker refuses --workers 0"
    return "worker"


@pytest.mark.parametrize("where", sorted(PROCESSES))
def test_each_command_parses(where: str) -> None:
    _, argv = PROCESSES[where]
    role(where, argv)


def test_image_serves_by_default() -> None:
    assert role("Containerfile", image().entrypoint + image().command) == "serve"


def test_compose_runs_two_api_nodes_and_two_workers() -> None:
    img = image()
    counts = {"api": 0, "worker": 0, "serve": 0}
    for name, service in palette_services().items():
        replicas = service.get("deploy", {}).get("replicas", 1)
        counts[role(name, [*service.get("entrypoint", img.entrypoint), *service["command"]])] += (
            replicas
        )
    assert counts == {"api": 2, "worker": 2, "serve": 0}


def test_k8s_runs_api_and_worker_deployments() -> None:
    counts = {"api": 0, "worker": 0, "serve": 0}
    for deployment, container in k8s_palette_containers():
        argv = [*container.get("command", image().entrypoint), *container["args"]]
        counts[role(deployment["metadata"]["name"], argv)] += deployment["spec"]["replicas"]
    assert counts["api"] >= 2 and counts["worker"] >= 2 and counts["serve"] == 0, counts


# -- probes, health checks, drains ----------------------------------------------------------


def http_paths() -> set[str]:
    return {route.path for route in ops_routes}


def test_k8s_api_probes_and_resources() -> None:
    services = k8s_of_kind("Service")
    budgets = k8s_of_kind("PodDisruptionBudget")
    for deployment, container in k8s_palette_containers():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert any(
            b["spec"]["selector"]["matchLabels"].items() <= labels.items() for b in budgets
        ), f"{deployment['metadata']['name']}: no PodDisruptionBudget selects its pods"
        resources = container["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"]
        assert resources["limits"]["memory"]
        argv = [*container.get("command", image().entrypoint), *container["args"]]
        if role(deployment["metadata"]["name"], argv) != "api":
            continue
        settings = Settings.from_env(k8s_environment(container))
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["http"] == settings.port
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["path"] in http_paths()
            assert container[probe]["httpGet"]["port"] in (settings.port, "http")
        assert any(
            s["spec"]["selector"].items() <= labels.items()
            and any(p["targetPort"] in ("http", settings.port) for p in s["spec"]["ports"])
            for s in services
        ), "no Service sends traffic to the API pods"


def test_health_checks_use_real_paths_and_ports() -> None:
    # The image's HEALTHCHECK reads PALETTE_PORT itself; Compose's checks name the port.
    paths = re.findall(r"http://127\.0\.0\.1:[^/'\" ]+(/[a-z]+)", CONTAINERFILE.read_text())
    for name, service in palette_services().items():
        check = service.get("healthcheck", {})
        if check.get("disable"):
            continue
        port = Settings.from_env(compose_environment(service)).port
        for url_port, path in re.findall(
            r"http://127\.0\.0\.1:(\d+)(/[a-z]+)", " ".join(check.get("test", []))
        ):
            assert int(url_port) == port, f"compose {name}: checks port {url_port}, not {port}"
            paths.append(path)
    assert paths and set(paths) <= http_paths(), paths


def required_grace_s(kind: str, settings: Settings) -> float:
    if kind == "worker":
        return settings.drain_grace_seconds + WORKER_SIGNAL_POLL_S + MARGIN_S
    return (
        settings.drain_delay_seconds
        + int(settings.drain_grace_seconds)
        + SERVE_SHUTDOWN_EXTRA_S
        + MARGIN_S
    )


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, f"compose durations here are written as Ns or Nm, got {duration!r}"
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def test_shutdown_grace_covers_the_drain() -> None:
    for deployment, container in k8s_palette_containers():
        name = deployment["metadata"]["name"]
        kind = role(name, [*container.get("command", image().entrypoint), *container["args"]])
        needed = required_grace_s(kind, Settings.from_env(k8s_environment(container)))
        given = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert given >= needed, f"{name}: terminationGracePeriodSeconds {given} < {needed}"
    for name, service in palette_services().items():
        kind = role(name, [*service.get("entrypoint", image().entrypoint), *service["command"]])
        needed = required_grace_s(kind, Settings.from_env(compose_environment(service)))
        given = _seconds(service.get("stop_grace_period", "10s"))
        assert given >= needed, f"compose {name}: stop_grace_period {given} s < {needed} s"


def test_compose_redis_aof_and_start_order() -> None:
    services = compose()["services"]
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command and "--appendfsync everysec" in redis_command
    for name, service in palette_services().items():
        for dependency, condition in service["depends_on"].items():
            assert condition["condition"] == "service_healthy", name
            assert services[dependency]["healthcheck"]["test"], dependency


# -- (c) the linters --------------------------------------------------------------------------


def linter(name: str) -> str:
    """A linter installed from requirements/test.lock beside this Python, else on PATH."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / name
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is not installed: it comes from requirements/test.lock "
            "(pip install --require-hashes -r requirements/test.lock, as .ci/run does)"
        )
    return found


def run_linter(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [linter(argv[0]), *argv[1:]], capture_output=True, text=True, timeout=300, cwd=REPO
    )


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout}{result.stderr}"


def test_hadolint_passes_the_containerfile() -> None:
    # Every rule at every level (the default failure threshold is "info").
    assert_clean(run_linter("hadolint", "--no-color", str(CONTAINERFILE)))


def test_kubernetes_validate_passes_the_manifests() -> None:
    assert K8S_FILES
    assert_clean(run_linter("kubernetes-validate", "--strict", *map(str, K8S_FILES)))


def test_compose_file_matches_the_compose_specification() -> None:
    assert_clean(
        run_linter("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    )


def test_the_linters_reject_broken_files(tmp_path: Path) -> None:
    """Each linter really checks (a broken copy fails), so a green run means something."""
    containerfile = tmp_path / "Containerfile"
    containerfile.write_text("FROM debian\nRUN apt-get install -y g++\n")
    assert run_linter("hadolint", "--no-color", str(containerfile)).returncode != 0
    manifest = tmp_path / "api.yaml"
    manifest.write_text((K8S_DIR / "api.yaml").read_text().replace("periodSeconds", "periodSecs"))
    assert run_linter("kubernetes-validate", "--strict", str(manifest)).returncode != 0
    compose_file = tmp_path / "compose.yaml"
    compose_file.write_text(COMPOSE.read_text().replace("stop_grace_period", "stop_grace"))
    result = run_linter(
        "check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(compose_file)
    )
    assert result.returncode != 0
