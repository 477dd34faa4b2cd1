"""A room on JupyterHub: three attendees log in and run the first two notebooks at the same
time, through the hub (proxy -> their own single-user server -> a kernel over websocket).

Each ends with a cell of its own (an nft rule on port 300<i>, a marker in its cache), and
the test checks that every attendee got its own results, that no lab shows another's rule,
that caches are per attendee, and that an attendee's token cannot reach another's server.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List

import pytest

pytestmark = pytest.mark.hub

USERS = ("attendee-1", "attendee-2", "attendee-3")
NOTEBOOKS = ("00-setup.ipynb", "01-empty-table.ipynb")  # copied into the room by conftest
CELL_TIMEOUT = 120  # seconds one cell may run
SPAWN_TIMEOUT = 60


class CellError(AssertionError):
    pass


class Attendee:
    """One user: logs in through the login form, gets a token, runs cells in its kernels."""

    def __init__(self, hub, name: str):
        import requests

        self.hub, self.name = hub, name
        self.web = requests.Session()
        self.token = ""

    # -- the hub --------------------------------------------------------------------------
    def login(self) -> None:
        r = self.web.get(f"{self.hub.url}/hub/login", timeout=10)
        r.raise_for_status()
        xsrf = self.web.cookies.get("_xsrf")
        assert xsrf, "the login page sets an _xsrf cookie"
        r = self.web.post(f"{self.hub.url}/hub/login", timeout=30, allow_redirects=False,
                          data={"username": self.name, "password": self.hub.password, "_xsrf": xsrf})
        assert r.status_code == 302, f"login of {self.name}: {r.status_code} {r.text[:300]}"
        # a token of the user's own, asked for with the login cookie and the xsrf token of
        # the new session (a page of the hub hands it out)
        r = self.web.get(f"{self.hub.url}/hub/token", timeout=10)
        r.raise_for_status()
        xsrf = [c.value for c in self.web.cookies if c.name == "_xsrf"][-1]
        r = self.web.post(f"{self.hub.url}/hub/api/users/{self.name}/tokens", timeout=10,
                          json={"note": "tests/hub", "expires_in": 900}, headers={"X-XSRFToken": xsrf})
        assert r.status_code == 201, f"token for {self.name}: {r.status_code} {r.text[:300]}"
        self.token = r.json()["token"]

    def api(self, method: str, path: str, token: str | None = None, **kw):
        import requests

        headers = {"Authorization": f"token {token or self.token}"}
        return requests.request(method, f"{self.hub.url}{path}", headers=headers, timeout=30,
                                allow_redirects=False, **kw)

    def spawn(self) -> None:
        r = self.api("POST", f"/hub/api/users/{self.name}/server")
        assert r.status_code in (201, 202), f"spawn {self.name}: {r.status_code} {r.text[:300]}"
        end = time.monotonic() + SPAWN_TIMEOUT
        while True:
            server = self.api("GET", f"/hub/api/users/{self.name}").json().get("servers", {}).get("", {})
            if server.get("ready"):
                return
            if time.monotonic() > end:
                raise AssertionError(f"{self.name}'s server not ready in {SPAWN_TIMEOUT} s:\n{self.hub.log_tail()}")
            time.sleep(0.3)

    # -- the single-user server, through the proxy -----------------------------------------
    def server(self, method: str, path: str, token: str | None = None, **kw):
        return self.api(method, f"/user/{self.name}/api/{path}", token=token, **kw)

    def notebook(self, name: str) -> dict:
        r = self.server("GET", f"contents/nfteach/{name}?content=1&type=notebook")
        assert r.status_code == 200, f"{self.name} has no ~/nfteach/{name}: {r.status_code}"
        return r.json()["content"]

    def kernel(self) -> Kernel:
        r = self.server("POST", "kernels", json={"name": "python3"})
        assert r.status_code == 201, f"kernel for {self.name}: {r.status_code} {r.text[:300]}"
        return Kernel(self, r.json()["id"])


class Kernel:
    """A kernel of the attendee's server, driven over its websocket (Jupyter protocol 5.3)."""

    def __init__(self, who: Attendee, kid: str):
        import websocket

        self.who, self.id, self.session = who, kid, uuid.uuid4().hex
        url = who.hub.url.replace("http://", "ws://") + f"/user/{who.name}/api/kernels/{kid}/channels"
        self.ws = websocket.create_connection(url, header=[f"Authorization: token {who.token}"], timeout=30)

    def run(self, code: str, timeout: float = CELL_TIMEOUT) -> str:
        """Execute one cell; its text output; CellError with the traceback if it raised."""
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": self.who.name,
                       "session": self.session, "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        out: List[str] = []
        reply, idle = None, False
        end = time.monotonic() + timeout
        while reply is None or not idle:
            left = end - time.monotonic()
            if left <= 0:
                raise CellError(f"{self.who.name}: cell did not finish in {timeout} s:\n{code[:200]}")
            self.ws.settimeout(left)
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                out.append(content["data"].get("text/plain", ""))
            elif kind == "error":
                out.append("\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
            elif kind == "execute_reply":
                reply = content
        if reply["status"] != "ok":
            raise CellError(f"{self.who.name}: cell failed:\n{code[:300]}\n---\n{''.join(out)[-2000:]}")
        return "".join(out)

    def close(self) -> None:
        self.ws.close()
        self.who.server("DELETE", f"kernels/{self.id}")


def own_cell(i: int) -> str:
    """The cell each attendee runs after the notebooks: a rule of its own, and where it writes."""
    return f'''
import json, os
from pathlib import Path
from nfteach import course
from nfteach.vm import fetch, qemu
lab = course.open_lab()
t = lab.script("""
sudo nft add table ip room
sudo nft add chain ip room input {{ type filter hook input priority 0 \\\\; }}
sudo nft add rule ip room input tcp dport 300{i} counter drop
@host nc -w 1 -z 192.168.122.204 300{i}
sudo nft list ruleset
""")
mark = fetch.cache_dir() / "whoami"
mark.parent.mkdir(parents=True, exist_ok=True)
mark.write_text(os.environ["JUPYTERHUB_USER"])
print(json.dumps({{
    "user": os.environ["JUPYTERHUB_USER"], "home": os.environ["HOME"], "cwd": os.getcwd(),
    "backend": lab.name, "pid": os.getpid(),
    "cache": str(fetch.cache_dir()), "shared": str(fetch.shared_cache_dir()), "runs": str(qemu.runs_dir()),
    "ruleset": lab.script("sudo nft list ruleset").text(), "transcript": t.text(),
}}))
lab.close()
'''


def attend(hub, i: int, name: str, barrier: threading.Barrier, timings: Dict[str, float]) -> dict:
    """Log in, spawn, run both notebooks cell by cell (each in its own kernel), then own_cell."""
    who = Attendee(hub, name)
    try:
        who.login()
        who.spawn()
    except BaseException:
        barrier.abort()  # the others stop waiting for this attendee
        raise
    barrier.wait(SPAWN_TIMEOUT)  # everyone's server is up: the notebooks run at the same time
    t0 = time.monotonic()
    result = {"notebooks": {}}
    for nb_name in NOTEBOOKS:
        nb = who.notebook(nb_name)
        k = who.kernel()
        try:
            outs = [k.run("".join(c["source"])) for c in nb["cells"] if c["cell_type"] == "code"]
            result["notebooks"][nb_name] = outs
            if nb_name == NOTEBOOKS[-1]:
                result["own"] = json.loads(k.run(own_cell(i)).strip().splitlines()[-1])
        finally:
            k.close()
    timings[name] = time.monotonic() - t0
    result["token"] = who.token
    return result


def test_three_attendees_run_the_first_notebooks_at_once_each_in_their_own_lab(hub):
    t0 = time.monotonic()
    barrier = threading.Barrier(len(USERS))
    timings: Dict[str, float] = {}
    with ThreadPoolExecutor(len(USERS)) as pool:
        futures = {name: pool.submit(attend, hub, i, name, barrier, timings) for i, name in enumerate(USERS, 1)}
        deadline = time.monotonic() + SPAWN_TIMEOUT + 2 * CELL_TIMEOUT
        results = {name: f.result(timeout=max(1, deadline - time.monotonic())) for name, f in futures.items()}
    hub.track()
    print(f"\nhub: {len(USERS)} attendees, notebooks {', '.join(NOTEBOOKS)}; "
          + ", ".join(f"{n} {s:.1f} s" for n, s in sorted(timings.items()))
          + f"; whole test {time.monotonic() - t0:.1f} s")

    for i, name in enumerate(USERS, 1):
        r = results[name]
        # both notebooks ran every code cell; 00 prints the banner of a sim lab
        assert "sim" in "".join(r["notebooks"][NOTEBOOKS[0]][:1]), r["notebooks"][NOTEBOOKS[0]][:1]
        own = r["own"]
        home = hub.homes / name
        assert own["user"] == name and own["backend"] == "sim"
        assert own["home"] == str(home) and own["cwd"] == str(home)
        assert own["cache"] == str(home / ".cache" / "nfteach")
        assert own["runs"] == str(home / ".cache" / "nfteach" / "run")
        assert own["shared"].endswith("/room/shared")
        # my rule, its counter hit by my own nc, and nobody else's rule
        assert f"tcp dport 300{i} counter packets 1 " in own["ruleset"], own["transcript"]
        for j in range(1, len(USERS) + 1):
            if j != i:
                assert f"dport 300{j}" not in own["ruleset"], f"{name} sees attendee-{j}'s rule"
        # the marker written last in my cache is mine: no cache is shared
        assert (home / ".cache" / "nfteach" / "whoami").read_text() == name
        assert (home / "nfteach" / NOTEBOOKS[0]).exists(), "the course was copied into the home"
    assert len({results[n]["own"]["pid"] for n in USERS}) == len(USERS), "one kernel process per attendee"

    # an attendee's token opens its own server and no one else's
    a, b = Attendee(hub, USERS[0]), Attendee(hub, USERS[1])
    a.token, b.token = results[USERS[0]]["token"], results[USERS[1]]["token"]
    assert a.server("GET", "kernels").status_code == 200
    denied = {}
    for path in ("kernels", "contents/nfteach"):
        denied[path] = b.server("GET", path, token=a.token).status_code
    denied["user model"] = a.api("GET", f"/hub/api/users/{USERS[1]}").status_code
    print(f"hub: {USERS[0]}'s token on {USERS[1]}'s server and user model: {denied}")
    for what, code in denied.items():
        assert code in (403, 404), f"{USERS[0]}'s token reached {USERS[1]}'s {what}: {code}"

    for name in USERS:
        r = Attendee(hub, name).api("DELETE", f"/hub/api/users/{name}/server",
                                    token=results[name]["token"])
        assert r.status_code in (202, 204), f"stop {name}: {r.status_code}"
