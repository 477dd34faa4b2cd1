"""The room's deployment files say what docs/workshop.md says (fast, no hub started)."""
import os
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


class _Section(dict):
    def __getattr__(self, name):
        return self.setdefault(name, _Section()) if name[:1].isupper() else self[name]

    def __setattr__(self, name, value):
        self[name] = value


def _load_single_machine(monkeypatch, **env):
    for k in [k for k in os.environ if k.startswith("NFTEACH_")]:
        monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    c = _Section()
    runpy.run_path(str(DEPLOY / "single-machine" / "jupyterhub_config.py"), init_globals={"get_config": lambda: c})
    return c


def test_single_machine_config_gives_each_attendee_its_own_cache_and_the_shared_kernels(monkeypatch):
    c = _load_single_machine(monkeypatch, NFTEACH_ROOM_PASSWORD="pw", NFTEACH_ROOM_DIR="/srv/room")
    assert c.JupyterHub.spawner_class == "systemdspawner.SystemdSpawner"
    assert c.SystemdSpawner.dynamic_users and c.SystemdSpawner.disable_user_sudo
    assert "/srv/room/shared" in c.SystemdSpawner.readonly_paths
    env = c.Spawner.environment
    assert env["NFTEACH_BACKEND"] == "sim" and env["NFTEACH_SHARED_CACHE"] == "/srv/room/shared"

    class User:
        name = "ada"

    class Spawner:
        user = User()

    assert env["NFTEACH_CACHE"](Spawner()) == "/var/lib/ada/.cache/nfteach"
    assert "mem_limit" not in c.Spawner and "cpu_limit" not in c.Spawner, "limits come from docs/sizing.md"
    c = _load_single_machine(monkeypatch, NFTEACH_ROOM_PASSWORD="pw", NFTEACH_MEM_LIMIT="3G", NFTEACH_CPU_LIMIT="1.5")
    assert c.Spawner.mem_limit == "3G" and c.Spawner.cpu_limit == 1.5


def test_single_machine_config_refuses_an_open_room_and_the_live_backend(monkeypatch):
    with pytest.raises(SystemExit, match="NFTEACH_ROOM_PASSWORD"):
        _load_single_machine(monkeypatch)
    with pytest.raises(SystemExit, match="live needs root"):
        _load_single_machine(monkeypatch, NFTEACH_ROOM_PASSWORD="pw", NFTEACH_ROOM_BACKEND="live")


def test_z2jh_values_leave_the_limits_to_docs_sizing():
    yaml = pytest.importorskip("yaml")
    text = (DEPLOY / "z2jh" / "values.yaml").read_text()
    v = yaml.safe_load(text)
    su = v["singleuser"]
    for res in ("memory", "cpu"):
        assert set(su[res]) == {"guarantee", "limit"}
    assert text.count("see docs/sizing.md") >= 4
    assert su["extraEnv"]["NFTEACH_SHARED_CACHE"] == su["storage"]["extraVolumeMounts"][0]["mountPath"]
    assert su["storage"]["extraVolumeMounts"][0]["readOnly"] is True
    assert v["cull"]["enabled"] and v["prePuller"]["hook"]["enabled"]
    assert "DummyAuthenticator" in v["hub"]["extraConfig"]["nfteach-password"]


def test_the_image_is_built_from_the_binder_environment():
    docker = (DEPLOY / "Dockerfile").read_text()
    assert "binder/environment.yml" in docker and (ROOT / "binder" / "environment.yml").exists()
    assert "deploy/single-machine/nfteach-singleuser" in docker


def test_the_image_leaves_the_answers_out():
    ignored = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert "instructor" in ignored and (ROOT / "instructor" / "answers").is_dir()
