import contextlib
import os
import signal
import tempfile
from pathlib import Path

import pytest

from screening import create_app
from screening.config import ROOT
from screening.extensions import db, limiter
from screening.rules import load_rules
from tests.live import free_port, smtp_server  # noqa: F401 - the tests import free_port from here

# Fixed test keys (Fernet format): never used outside the tests.
TEST_KEYS = {"ENCRYPTION_KEYS": ["qH4c2C3x0r3ZkO3bq7ZkJkq0Ww4h3x7oR0Vb5y6H1jQ="],
             "INDEX_KEY": "test-index-key-0123456789abcdef0123456789"}
DATABASES = ["sqlite"] + (["postgresql"] if os.environ.get("SCREENING_TEST_DATABASE_URL") else [])


def pytest_configure(config):
    """Under pytest-xdist (``make test`` runs two workers), give each worker its own PostgreSQL database and its own
    Redis databases, so that tests in parallel never empty or fill each other's."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return
    number = int(worker.removeprefix("gw"))
    url = os.environ.get("SCREENING_TEST_DATABASE_URL")
    if url and not url.endswith(f"_{worker}"):
        os.environ["SCREENING_TEST_DATABASE_URL"] = _own_database(url, worker)
    redis_url = os.environ.get("SCREENING_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
    prefix, _, index = redis_url.rpartition("/")
    os.environ["SCREENING_TEST_REDIS_URL"] = f"{prefix}/{int(index) + 4 * number}"  # 5 and 6, then 9 and 10


def _own_database(url: str, worker: str) -> str:
    """Create (afresh) the database ``<name>_<worker>`` on the server of ``url``; return its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = f"{parsed.database}_{worker}"
    admin = create_engine(parsed.set(drivername="postgresql+psycopg", database="postgres"),
                          isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def ruleset():
    """The shipped rules.yaml, checked and compiled."""
    return load_rules(ROOT / "rules.yaml")


# Email of in-process test apps goes to a folder of this test run, never to instance/mail.
MAIL_DIR = str(Path(tempfile.gettempdir()) / f"screening-test-mail-{os.getpid()}")


def make_app(uri: str, **extra):
    """Return an app on ``uri`` with an empty schema; its tasks run at once, in the caller (QUEUE_URL=immediate)."""
    settings = {"TESTING": True, "SQLALCHEMY_DATABASE_URI": uri, "SECRET_KEY": "test-secret",
                "CLINIC_NAME": "Test Clinic", "CLINIC": None, "PDF_BACKGROUND": False, "QUEUE_URL": "immediate",
                "MAIL_DIR": MAIL_DIR,
                # No role must have a second factor here (an account that has one is still asked for it): the shipped
                # default (admin, practitioner) is tested in tests/test_two_factor.py, with every staff route.
                "TWO_FACTOR_ROLES": "", **TEST_KEYS, **extra}
    settings.pop("CLINIC")
    app = create_app(settings)
    with app.app_context():
        db.drop_all()
        db.create_all()
    return app


@contextlib.contextmanager
def consumer(app, workers: int = 1):
    """Run a real Huey consumer on the app's queue in this process (threads) for the block; stop it gracefully."""
    from screening import tasks

    huey = tasks.queue_of(app).huey
    worker = huey.create_consumer(workers=workers, periodic=False, initial_delay=0.05, max_delay=0.2)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    worker.start()
    try:
        yield worker
    finally:
        worker.stop(graceful=True)
        for sig, handler in handlers.items():  # the consumer took them over: give them back to pytest
            signal.signal(sig, handler)


class Mailbox:
    """An aiosmtpd handler keeping what arrives; ``replies`` answer the next RCPTs ("451 ..."); ``delay`` slows DATA."""

    def __init__(self):
        self.messages: list = []
        self.replies: list[str] = []
        self.delay = 0.0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.replies:
            return self.replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        import asyncio
        import email
        import email.policy

        await asyncio.sleep(self.delay)
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp():
    """A real SMTP server (aiosmtpd) on a free loopback port in this process: (its smtp:// URL, its Mailbox)."""
    mailbox = Mailbox()
    with smtp_server(mailbox) as url:
        yield url, mailbox


@pytest.fixture(params=DATABASES)
def database_url(request, tmp_path):
    """Each test runs on SQLite, and on PostgreSQL when SCREENING_TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return os.environ["SCREENING_TEST_DATABASE_URL"]


def close_app(app) -> None:
    """Empty a test app's schema and close its engine (pooled connections left to the collector fail a test)."""
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


@pytest.fixture
def app(database_url):
    app = make_app(database_url)
    yield app
    close_app(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture(autouse=True)
def _fresh_rate_limits(request):
    """Start every test that uses the app with empty sign-in rate limits."""
    if "app" in request.fixturenames:
        app = request.getfixturevalue("app")
        with app.app_context():
            limiter.reset()
