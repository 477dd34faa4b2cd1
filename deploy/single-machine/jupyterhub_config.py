# JupyterHub for one nfteach room on one machine (see docs/workshop.md).
#
#   sudo NFTEACH_ROOM_PASSWORD=... /srv/nfteach/venv/bin/jupyterhub \
#        -f deploy/single-machine/jupyterhub_config.py
#
# Every attendee gets a systemd unit of their own (SystemdSpawner) running as a *dynamic*
# system user: a UID of their own, a home in /var/lib/<name> (mode 0700, under
# /var/lib/private), a private /tmp and /dev, no sudo, the rest of the system read-only,
# and the memory/CPU limits below. Their labs, caches, notebooks and QEMU guests live in
# that home; the Debian kernels and disk images are shared read-only from
# $NFTEACH_ROOM_DIR/shared, prepared once by the instructor:
#
#   sudo NFTEACH_CACHE=/srv/nfteach/shared nfteach vm fetch --kernel 5.10 --kernel 6.1 --kernel 6.12
#   sudo NFTEACH_CACHE=/srv/nfteach/shared nfteach vm build --kernel 5.10 --kernel 6.1 --kernel 6.12
#
# Settings come from the environment of the hub process, so this file needs no edits:
#   NFTEACH_ROOM_DIR       /srv/nfteach: venv/ (the course env), course/ (notebooks), shared/
#   NFTEACH_ROOM_PASSWORD  the room's shared password (required; any user name is accepted)
#   NFTEACH_ROOM_BACKEND   backend of every notebook: sim (default) or vm (live needs root: never here)
#   NFTEACH_ROOM_KERNEL    kernel profile, default 5.10
#   NFTEACH_MEM_LIMIT      per attendee, e.g. "<N>G"  -- see docs/sizing.md
#   NFTEACH_CPU_LIMIT      per attendee, in CPUs     -- see docs/sizing.md
#   NFTEACH_CULL_TIMEOUT   seconds idle before a server is stopped (default 3600; 0: never)
#   NFTEACH_HUB_PORT       public port (default 8000; put TLS in front, or set ssl_cert/ssl_key)
#
# tests/hub/ starts this file with a test authenticator and SimpleLocalProcessSpawner
# (no systemd in CI), so the per-user environment below is what the test checks.
import os
import shlex
import sys

c = get_config()  # noqa: F821 -- provided by JupyterHub when it loads this file

ROOM = os.environ.get("NFTEACH_ROOM_DIR", "/srv/nfteach")
VENV = os.path.join(ROOM, "venv")
COURSE = os.path.join(ROOM, "course")
SHARED = os.path.join(ROOM, "shared")
HERE = os.path.dirname(os.path.abspath(__file__))
BACKEND = os.environ.get("NFTEACH_ROOM_BACKEND", "sim")
if BACKEND not in ("sim", "vm"):
    raise SystemExit(f"NFTEACH_ROOM_BACKEND={BACKEND!r}: a room runs sim or vm (live needs root)")

# -- the hub ----------------------------------------------------------------------------
c.JupyterHub.bind_url = f"http://:{os.environ.get('NFTEACH_HUB_PORT', '8000')}"
c.JupyterHub.db_url = f"sqlite:///{os.path.join(ROOM, 'hub', 'jupyterhub.sqlite')}"
c.JupyterHub.cookie_secret_file = os.path.join(ROOM, "hub", "jupyterhub_cookie_secret")

# -- who may log in: a room password; names become unit and user names, keep them plain ---
if not os.environ.get("NFTEACH_ROOM_PASSWORD"):
    # DummyAuthenticator without a password lets anyone in with any password
    raise SystemExit("set NFTEACH_ROOM_PASSWORD (the room's password); see docs/workshop.md")
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = os.environ["NFTEACH_ROOM_PASSWORD"]
c.Authenticator.allow_all = True
c.Authenticator.username_pattern = r"^[a-z][a-z0-9-]{0,30}$"
c.Authenticator.admin_users = set(filter(None, os.environ.get("NFTEACH_ROOM_ADMINS", "").split(",")))

# -- one systemd unit per attendee --------------------------------------------------------
c.JupyterHub.spawner_class = "systemdspawner.SystemdSpawner"
c.SystemdSpawner.dynamic_users = True  # own UID, home /var/lib/<name>, ProtectSystem=strict
c.SystemdSpawner.isolate_tmp = True
c.SystemdSpawner.isolate_devices = True  # no /dev/kvm: the vm backend runs QEMU under TCG anyway
c.SystemdSpawner.disable_user_sudo = True
c.SystemdSpawner.readonly_paths = [SHARED, COURSE, VENV]
# attendees cannot see each other's processes (nor their QEMU command lines)
c.SystemdSpawner.unit_extra_properties = {"ProtectProc": "invisible"}
# Per-attendee limits, from the measurements in docs/sizing.md (bench/room.py): a sim lab
# and a vm lab (one QEMU guest each) need very different numbers. No default here:
# see docs/sizing.md.
if os.environ.get("NFTEACH_MEM_LIMIT"):
    c.Spawner.mem_limit = os.environ["NFTEACH_MEM_LIMIT"]  # see docs/sizing.md
if os.environ.get("NFTEACH_CPU_LIMIT"):
    c.Spawner.cpu_limit = float(os.environ["NFTEACH_CPU_LIMIT"])  # see docs/sizing.md
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 60


def user_home(spawner) -> str:
    """The attendee's home: SystemdSpawner's dynamic-user home, or the spawner's own."""
    home = getattr(spawner, "home_dir", None)  # SimpleLocalProcessSpawner (tests)
    return home or f"/var/lib/{spawner.user.name}"


# The single-user server: copy the course into ~/nfteach once, then start.
c.Spawner.cmd = [os.path.join(HERE, "nfteach-singleuser"), os.path.join(VENV, "bin", "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab/tree/nfteach/00-setup.ipynb"
c.Spawner.environment = {
    "NFTEACH_BACKEND": BACKEND,
    "NFTEACH_KERNEL": os.environ.get("NFTEACH_ROOM_KERNEL", "5.10"),
    "NFTEACH_COURSE": COURSE,
    # everything an attendee's labs write: apt state, QEMU run dirs and disk overlays
    "NFTEACH_CACHE": lambda spawner: os.path.join(user_home(spawner), ".cache", "nfteach"),
    # the kernels and disk images, read-only, shared by the room
    "NFTEACH_SHARED_CACHE": SHARED,
    "PATH": os.pathsep.join([os.path.join(VENV, "bin"), "/usr/local/bin", "/usr/bin", "/bin"]),
}

# -- stop idle servers (pip install jupyterhub-idle-culler) -------------------------------
CULL = int(os.environ.get("NFTEACH_CULL_TIMEOUT", "3600"))
if CULL > 0:
    c.JupyterHub.load_roles = [{
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }]
    c.JupyterHub.services = [{
        "name": "idle-culler",
        "command": shlex.split(f"{sys.executable} -m jupyterhub_idle_culler --timeout={CULL}"),
    }]
