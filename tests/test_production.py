"""The README's production set-up, run as written: SCREENING_ENV=production, Redis for the rate limits,
``flask --app wsgi db upgrade``, then ``gunicorn -w 2 --max-requests ...`` (issue 11, High #1).

The Redis of the development and CI machines (127.0.0.1:6379) is used, in logical database 5 (emptied before and
after; ``SCREENING_TEST_REDIS_URL`` to change it). Without a Redis there, these tests are skipped with a loud
reason, except under CI (``CI`` set), where they fail: CI must prove the production set-up starts.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from screening.config import ROOT
from tests import live
from tests.web import csrf_token

REDIS_URL = os.environ.get("SCREENING_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
PASSWORD = "correct horse battery"


@pytest.fixture
def redis_url():
    """The test Redis database, emptied before and after; skip (or fail under CI) when it is not there."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        reason = (f"NO REDIS at {REDIS_URL} ({type(exc).__name__}): the production set-up (redis:// rate limits, "
                  "gunicorn -w 2) was NOT tested")
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail(reason + " - under CI this is a failure, not a skip")
        pytest.skip(reason)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture
def database_url(tmp_path):
    """PostgreSQL when SCREENING_TEST_DATABASE_URL is set (as in production), else a SQLite file."""
    return os.environ.get("SCREENING_TEST_DATABASE_URL") or f"sqlite:///{tmp_path / 'production.db'}"


def production_env(database_url: str, redis_url: str, **extra) -> dict:
    return live.server_env(database_url, SCREENING_ENV="production", SCREENING_RATELIMIT_STORAGE_URI=redis_url,
                           **extra)


def add_staff(env: dict, email: str, roles: list[str]) -> None:
    from screening.extensions import db
    from screening.staff.accounts import create_user

    app = live.orm_app(env)
    with app.app_context():
        create_user(db.session, email, "Pat", roles, PASSWORD)
        db.session.remove()
        db.engine.dispose()


def sign_in(port: int, password: str) -> int:
    c = live.Client(port)
    _, _, page, _ = c.request("GET", "/staff/login")
    status, _, _, _ = c.request("POST", "/staff/login", {"csrf_token": csrf_token(page), "email": "prac@clinic.test",
                                                         "password": password})
    return status


def post_chunked(port: int, path: str, body: bytes, cookie: str = "") -> int | None:
    """POST ``body`` with Transfer-Encoding: chunked (no Content-Length); return the status.

    None when the server closed the connection before the client had sent it all: a server that refuses a body
    after reading its first 256 KiB may answer and close while the rest is still on its way, and the kernel then
    resets the connection, losing the answer (a race, seen once in CI). The caller then reads the status from
    gunicorn's access log.
    """
    conn = http.client.HTTPConnection(live.HOST, port, timeout=60)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Transfer-Encoding": "chunked"}
        if cookie:
            headers["Cookie"] = cookie
        chunks = (body[i:i + 16384] for i in range(0, len(body), 16384))
        try:
            conn.request("POST", path, body=chunks, headers=headers, encode_chunked=True)
            return conn.getresponse().status
        except (ConnectionResetError, BrokenPipeError):
            return None
    finally:
        conn.close()


def wait_for_access_line(server, text: str, timeout: float = 10) -> bool:
    """Whether ``text`` appears in gunicorn's access log within ``timeout`` (it is written after the answer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in server.log():
            return True
        time.sleep(0.1)
    return False


def test_the_documented_production_set_up_starts_and_shares_its_counts(tmp_path, redis_url, database_url):
    env = production_env(database_url, redis_url, SCREENING_START_LIMIT="3 per hour")
    live.reset_database(env)
    try:
        done = live.flask_cmd(env, "db", "upgrade")
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        add_staff(env, "prac@clinic.test", ["practitioner"])
        args = ("--max-requests", "1000", "--max-requests-jitter", "100", "--access-logfile", "-")
        with live.serve(env, tmp_path / "gunicorn.log", workers=2, extra_args=args) as server:
            # Failed sign-ins: counted in the database, whichever worker answers.
            for _ in range(5):
                assert sign_in(server.port, "wrong password!!") == 401
            assert sign_in(server.port, PASSWORD) == 429
            # The public form's limit: counted in Redis, shared by both workers.
            c = live.Client(server.port)
            statuses = []
            for _ in range(4):
                _, _, page, _ = c.request("GET", "/")
                statuses.append(c.request("POST", "/start", {"csrf_token": csrf_token(page), "action": "restart"})[0])
            assert statuses == [302, 302, 302, 429], statuses
            assert redis.Redis.from_url(redis_url).dbsize() > 0, "the counts are in Redis"
            # A chunked body over 256 KiB is refused, not cut short and read.
            _, _, page, _ = c.request("GET", "/")
            token = csrf_token(page)
            cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
            body = f"csrf_token={token}&action=restart&junk=".encode() + b"a" * (300 * 1024)
            status = post_chunked(server.port, "/start", body, cookie)
            assert status in (413, None), status
            assert wait_for_access_line(server, '"POST /start HTTP/1.1" 413 '), "the chunked POST was not refused"
        assert server.log_problems() == [], server.log_problems()
        # A restart (every worker new, memory empty) still holds the account.
        with live.serve(env, tmp_path / "gunicorn2.log", workers=2) as server:
            assert sign_in(server.port, PASSWORD) == 429
    finally:
        live.reset_database(env)


def _gunicorn(env: dict) -> tuple[int, str]:
    """Run ``gunicorn -w 2 wsgi:app`` until it stops by itself (at most 60 s); return its status and output."""
    with contextlib.ExitStack() as stack:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "-b", "127.0.0.1:0", "wsgi:app"],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        stack.callback(lambda: proc.poll() is None and os.killpg(proc.pid, signal.SIGKILL))
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            pytest.fail(f"gunicorn kept running:\n{out[-3000:]}")
    return proc.returncode, out


@pytest.mark.parametrize("setting, message", [
    ("memory://", "SCREENING_RATELIMIT_STORAGE_URI is memory://, which counts in each process separately"),
    ("redis://127.0.0.1:1", "cannot reach the rate-limit store SCREENING_RATELIMIT_STORAGE_URI=redis://127.0.0.1:1"),
])
def test_production_without_shared_counters_refuses_to_start_with_exit_4(tmp_path, setting, message):
    env = live.server_env(f"sqlite:///{tmp_path / 'never.db'}", SCREENING_ENV="production",
                          SCREENING_RATELIMIT_STORAGE_URI=setting)
    done = live.flask_cmd(env, "db", "upgrade", timeout=120)
    assert done.returncode == 4, (done.returncode, done.stderr)
    assert f"screening: cannot start: {message}" in done.stderr and "Traceback" not in done.stderr
    status, out = _gunicorn(env)
    # gunicorn's "App failed to load" (4); 1 when both workers fail at the same moment (its own race).
    assert status in (1, 4) and status != 3, out[-3000:]
    assert "App failed to load" in out and message in out
