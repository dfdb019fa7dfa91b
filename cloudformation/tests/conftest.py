"""pytest fixtures: a moto server of our own, boto3 clients pointed at it.

The server is the repository's .venv/bin/moto_server (moto[server]==5.2.5, shared with
the Rust tests), started on a free port. Before a test talks to it we make sure the
server answering on that port is our child process: were the port taken meanwhile, a
client would silently talk to someone else's server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

import boto3
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cfntools import REGION, ROOT  # noqa: E402

MOTO_SERVER = ROOT / ".venv" / "bin" / "moto_server"
START_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


def _listening_inodes(port: int) -> set[str] | None:
    """Socket inodes listening on 127.0.0.1:port (Linux /proc), None without /proc."""
    table = Path("/proc/net/tcp")
    if not table.exists():
        return None
    wanted = f"0100007F:{port:04X}"
    inodes = set()
    for line in table.read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == wanted and fields[3] == "0A":  # 0A = LISTEN
            inodes.add(fields[9])
    return inodes


def _socket_inodes_of(pid: int) -> set[str]:
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _is_our_server(proc: subprocess.Popen, port: int) -> bool:
    if proc.poll() is not None:
        return False
    listening = _listening_inodes(port)
    if listening is None:
        # No /proc: our child must still be running well after it should have failed
        # to bind a taken port.
        time.sleep(2)
        return proc.poll() is None
    return bool(listening & _socket_inodes_of(proc.pid))


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    if not MOTO_SERVER.exists():
        pytest.fail(f"{MOTO_SERVER} is missing: python3 -m venv .venv && .venv/bin/pip install 'moto[server]==5.2.5'")
    log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log", delete=False)
    for _attempt in range(3):
        port = _free_port()
        proc = subprocess.Popen(
            [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None and not _answers(f"{endpoint}/moto-api/"):
            time.sleep(0.1)
        if _answers(f"{endpoint}/moto-api/") and _is_our_server(proc, port):
            break
        _stop(proc)  # lost the port to someone else, or never came up: try another
    else:
        pytest.fail(f"moto_server did not start on a port of its own; its output is in {log.name}")
    try:
        yield endpoint
    finally:
        _stop(proc)
        log.close()


@pytest.fixture(autouse=True)
def _aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Never a real account: dummy credentials, no profile, no shared config.
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.fixture
def aws(moto_endpoint: str) -> Callable[..., object]:
    """aws(service, account=None): a boto3 client on a clean moto. With an account, the
    client acts in that account (moto partitions its data per account)."""
    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST"), timeout=10).close()
    sessions: dict[str | None, dict[str, str]] = {}

    def client(service: str, account: str | None = None):
        if account is not None and account not in sessions:
            sts = boto3.client("sts", endpoint_url=moto_endpoint, region_name=REGION)
            creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/cmkguard-test", RoleSessionName="cmkguard-test")[
                "Credentials"
            ]
            sessions[account] = {
                "aws_access_key_id": creds["AccessKeyId"],
                "aws_secret_access_key": creds["SecretAccessKey"],
                "aws_session_token": creds["SessionToken"],
            }
        return boto3.client(service, endpoint_url=moto_endpoint, region_name=REGION, **sessions.get(account, {}))

    return client


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # A run in which nothing passed proves nothing (e.g. everything skipped).
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and exitstatus == 0 and not reporter.stats.get("passed"):
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED
