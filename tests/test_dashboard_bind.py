"""The dashboard serves this machine only, whatever folder it starts from.

A real `streamlit run` started from another folder (and from dashboard/) binds to localhost with no
first-run e-mail prompt (dashboard/.streamlit/config.toml is read next to the script); on any
other address the app refuses to serve unless ATWU_ALLOW_REMOTE=1.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from apptest import APP, open_app
from streamlit import config as st_config
from streamlit.components.v2 import manifest_scanner
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def quick(monkeypatch):
    monkeypatch.setattr(manifest_scanner, "scan_component_manifests", lambda: [])
    monkeypatch.delenv("ATWU_ALLOW_REMOTE", raising=False)
    yield
    st_config.set_option("server.address", "localhost")


def run_bound_to(address: str | None) -> AppTest:
    st_config.set_option("server.address", address)
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize(
    ("address", "shown"), [("0.0.0.0", "address 0.0.0.0"), (None, "every network interface")]
)
def test_non_loopback_address_is_refused(quick, address, shown):
    at = run_bound_to(address)
    assert len(at.error) == 1
    assert f"listening on {shown}" in at.error[0].value
    assert "ATWU_ALLOW_REMOTE=1" in at.error[0].value
    assert not at.tabs  # nothing else rendered: no launcher


def test_remote_serving_is_an_explicit_opt_in(quick, monkeypatch):
    monkeypatch.setenv("ATWU_ALLOW_REMOTE", "1")
    at = run_bound_to("0.0.0.0")
    assert not at.error and at.tabs


def test_loopback_addresses_serve(quick):
    for address in ("localhost", "127.0.0.1", "::1"):
        at = run_bound_to(address)
        assert not at.error and at.tabs, address
    assert open_app().tabs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def other_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses (where an all-interfaces server answers)."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=False)
    except OSError:
        return []
    return [a for a in out.stdout.split() if "." in a and not a.startswith("127.")]


@pytest.mark.parametrize("start_in", ["elsewhere", "dashboard"])
def test_real_server_started_from_another_folder_binds_to_localhost(tmp_path, start_in):
    """`cd /tmp/x && streamlit run /abs/dashboard/app.py` and `cd dashboard && streamlit run
    app.py`: no flags, no ~/.streamlit, not headless (a desktop start), stdin closed."""
    home = tmp_path / "home"
    home.mkdir()
    cwd, script = (tmp_path, APP) if start_in == "elsewhere" else (REPO / "dashboard", "app.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    env.update(HOME=str(home), BROWSER="true", ATWU_RUNS_DIRS=str(tmp_path / "runs"))
    env.pop("ATWU_ALLOW_REMOTE", None)
    port = free_port()
    log_path = tmp_path / "streamlit.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", script, "--server.port", str(port)],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline, healthy = time.time() + 60, False
        while time.time() < deadline and proc.poll() is None and not healthy:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                    healthy = True
            except OSError:
                time.sleep(0.3)
        text = log_path.read_text()
        assert healthy, f"no answer on localhost (exit code {proc.poll()}): {text[-2000:]}"
        assert "Email" not in text and "email" not in text  # no first-run prompt
        assert "Network URL" not in text, text
        for address in other_addresses():
            with socket.socket() as s, pytest.raises(OSError):
                s.settimeout(2)
                s.connect((address, port))
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.parametrize(
    ("client", "refused"),
    [("192.0.2.7", True), ("127.0.0.1", False), ("::1", False), ("::ffff:127.0.0.1", False)],
)
def test_a_browser_on_another_machine_is_refused(quick, monkeypatch, client, refused):
    """Bound to localhost behind a proxy or tunnel, a non-local client still gets no page."""
    import streamlit as st

    monkeypatch.setattr(type(st.context), "ip_address", property(lambda self: client))
    at = run_bound_to("localhost")
    if refused:
        assert f"your address {client} is not local" in at.error[0].value and not at.tabs
    else:
        assert not at.error and at.tabs
