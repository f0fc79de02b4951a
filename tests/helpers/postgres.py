"""A PostgreSQL 15 server of the tests' own: a new cluster in a temporary folder, on a free 127.0.0.1
port, run as an unprivileged user (PostgreSQL refuses root), stopped by its process id."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import free_port, wait_until

PG_BIN = Path(os.environ.get("TEST_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
# Not a unix account's: the servers reach it over TCP with a password, as a team's would.
USER = "mlflow"
PASSWORD = "pg-secret%word"  # a '%' on purpose: URIs escape it, and MLflow's auth config escapes it again


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str
    pid: int
    log: Path

    def uri(self, database: str) -> str:
        """postgresql://USER:PASSWORD@HOST:PORT/DATABASE, as a user would write it."""
        return f"postgresql://{self.user}:{quote(self.password, safe='')}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres", **options: Any) -> Any:
        import psycopg

        return psycopg.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=database, **options
        )

    def create_database(self, name: str) -> str:
        with self.connect(autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.uri(name)


def _account() -> tuple[int, int]:
    """(uid, gid) to run PostgreSQL as: ours, unless we are root, then nobody's."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid


def _stop(process: subprocess.Popen) -> None:
    """Fast shutdown (SIGINT: clients are disconnected, nothing waits for them), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


@contextlib.contextmanager
def running_postgres() -> Iterator[Postgres]:
    """A fresh PostgreSQL cluster; skips the test where PostgreSQL 15 or psycopg is not installed."""
    if not (PG_BIN / "initdb").is_file() or not (PG_BIN / "postgres").is_file():
        pytest.skip(f"PostgreSQL 15 is not installed (no {PG_BIN}/initdb): apt-get install postgresql-15")
    pytest.importorskip("psycopg", reason="psycopg 3 is not installed: pip install -e '.[cpu,server]'")
    uid, gid = _account()
    # Not under pytest's tmp_path: its folders are private to root, and PostgreSQL runs as another user.
    folder = Path(tempfile.mkdtemp(prefix="test-postgres-"))
    as_account: dict[str, Any] = {"user": uid, "group": gid, "extra_groups": []} if os.geteuid() == 0 else {}
    try:
        (folder / "socket").mkdir()
        password_file = folder / "password"
        password_file.write_text(PASSWORD)
        for path in (folder, folder / "socket", password_file):
            os.chown(path, uid, gid)
        initdb = subprocess.run(
            [
                str(PG_BIN / "initdb"),
                f"--pgdata={folder / 'data'}",
                f"--username={USER}",
                f"--pwfile={password_file}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
            ],
            cwd=folder,
            capture_output=True,
            text=True,
            **as_account,
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb exited with {initdb.returncode}: {initdb.stderr[-2000:]}")
        port = free_port()
        log = folder / "postgres.log"
        with log.open("w") as output:
            process = subprocess.Popen(
                [
                    str(PG_BIN / "postgres"),
                    "-D",
                    str(folder / "data"),
                    "-p",
                    str(port),
                    "-k",
                    str(folder / "socket"),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",  # a test's data need not survive a power cut
                ],
                cwd=folder,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **as_account,
            )
        server = Postgres("127.0.0.1", port, USER, PASSWORD, process.pid, log)

        def accepting() -> bool:
            try:
                server.connect(connect_timeout=2).close()
                return True
            except Exception:  # psycopg.OperationalError until it listens
                return False

        try:
            try:
                wait_until(accepting, "postgres", process, seconds=60)
            except RuntimeError as exc:  # its log goes with the folder: say what it said
                raise RuntimeError(f"{exc}; its log:\n{log.read_text()[-3000:]}") from None
            yield server
        finally:
            _stop(process)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
