"""The tracking server a team shares: `make mlflow-server` runs this, which then becomes `mlflow server`.

    python -m pipeline.tracking.server --dir DIR [--host 127.0.0.1] [--port 5000] [--workers N]
        [--default-permission READ] [-- MORE `mlflow server` OPTIONS]

Read from the environment, never from the command line (which `ps` shows to every user):
  MLFLOW_BACKEND_URI     postgresql://USER[:PASSWORD]@HOST:PORT/DB; default: SQLite in DIR/mlflow.db
  MLFLOW_AUTH            true: accounts (MLflow's basic-auth app)
  MLFLOW_ADMIN_USERNAME  the admin account (default admin)
  MLFLOW_ADMIN_PASSWORD  its password, required with MLFLOW_AUTH=true; set again at every start

Artifacts are uploaded through the server into DIR/artifacts. With accounts, DIR also holds the auth
config (basic_auth.ini, mode 0600) and the Flask secret key; the accounts live in DIR/basic_auth.db,
or in the tracking database itself when that is PostgreSQL.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import secrets
import socket
import sys
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path

EXPERIMENT = "ernie-onnx"
AUTH_CONFIG = "basic_auth.ini"
AUTH_DATABASE = "basic_auth.db"
SECRET_KEY_FILE = "flask_secret_key"
PERMISSIONS = ("READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS")
# MLflow's own rules for an admin password: at least 12 characters, and never the default that
# older MLflow versions shipped in basic_auth.ini (published, so MLflow refuses it at login).
_MIN_PASSWORD_CHARS = 12
_PUBLISHED_DEFAULT_PASSWORD = "password1234"
_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
# MLflow 3 needs SQLAlchemy 2, whose plain `postgresql://` means psycopg2; the postgres extra is psycopg 3.
_PSYCOPG_SCHEME = "postgresql+psycopg://"


class ServerError(Exception):
    """A setting the server cannot start with: one line on stderr, exit 2."""


def backend_uri(given: str | None, folder: Path) -> str:
    """The tracking database as SQLAlchemy names it: SQLite in `folder` unless one is given."""
    if not given:
        return f"sqlite:///{folder.absolute() / 'mlflow.db'}"
    for scheme in _POSTGRES_SCHEMES:
        if given.startswith(scheme):
            return _PSYCOPG_SCHEME + given.removeprefix(scheme)
    return given


def is_postgres(uri: str) -> bool:
    return uri.startswith(("postgresql", "postgres:"))


def shown(uri: str) -> str:
    """A database URI fit for a terminal or a log: its password masked."""
    from sqlalchemy.engine import make_url

    return make_url(uri).render_as_string(hide_password=True)


def truthy(value: str | None, name: str) -> bool:
    text = (value or "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise ServerError(f"{name}={value!r} is neither true nor false")


def check_admin_password(username: str, password: str | None) -> str:
    if not password:
        raise ServerError(
            f"MLFLOW_AUTH=true needs MLFLOW_ADMIN_PASSWORD, the password of the admin account {username!r} "
            "(MLflow has no default password); set it in the environment, not on the command line"
        )
    if len(password) < _MIN_PASSWORD_CHARS or password == _PUBLISHED_DEFAULT_PASSWORD:
        raise ServerError(
            f"MLFLOW_ADMIN_PASSWORD: MLflow refuses it (at least {_MIN_PASSWORD_CHARS} characters, "
            "and not the default older MLflow versions published)"
        )
    return password


def private_file(path: Path) -> None:
    """Creates `path` (0600) or takes others' access away: SQLite keeps the mode for its journals."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)


def write_private(path: Path, text: str) -> None:
    """Only the server's own user may read it (database URIs and keys): 0600 from the first byte."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp creates 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def auth_config_text(database_uri: str, admin_username: str, default_permission: str) -> str:
    """MLflow's basic_auth.ini with our values. No admin_password: `ensure_admin` puts the account in
    the database before MLflow starts, so the password is stored only as MLflow's hash."""
    # MLflow reads this with configparser's interpolation: a %-escaped password in the URI needs %%.
    database = database_uri.replace("%", "%%")
    return (
        "# Written by `python -m pipeline.tracking.server` at every start with MLFLOW_AUTH=true.\n"
        "[mlflow]\n"
        f"default_permission = {default_permission}\n"
        f"database_uri = {database}\n"
        f"admin_username = {admin_username.replace('%', '%%')}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )


def secret_key(folder: Path) -> str:
    """The key the auth app signs its CSRF tokens with: MLflow's variable, else one kept in `folder`, so
    that a restart does not invalidate the pages users have open."""
    if given := os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY"):
        return given
    path = folder / SECRET_KEY_FILE
    if not path.is_file():
        write_private(path, secrets.token_hex(32))
    return path.read_text(encoding="utf-8").strip()


def ensure_admin(database_uri: str, username: str, password: str) -> str:
    """Makes `username` an admin whose password is `password`; says what it changed.

    MLflow creates the admin only on the first start, from its config, and keeps the old password
    on later starts whatever the config says; here the password given now is the one that works.
    """
    # mlflow.server.auth reads its config when imported: MLFLOW_AUTH_CONFIG_PATH is set before.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Starlette's deprecation notice about MLflow's own imports
        from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(database_uri)  # creates or migrates the auth tables
    try:
        if not store.has_user(username, use_primary=True):
            store.create_user(username, password, is_admin=True)
            return "created"
        changed = []
        if not store.authenticate_user(username, password, use_primary=True):
            store.update_user(username, password=password)
            changed.append("password")
        if not store.get_user(username).is_admin:
            store.update_user(username, is_admin=True)
            changed.append("admin rights")
        return f"{' and '.join(changed)} set" if changed else "unchanged"
    finally:
        store.engine.dispose()


def experiment_id(database_uri: str, name: str) -> str | None:
    """The id of experiment `name` in the tracking database, if it has one (checks the database answers)."""
    import sqlalchemy

    if database_uri.startswith("sqlite:///") and not Path(database_uri.removeprefix("sqlite:///")).is_file():
        return None  # connecting would create the file
    connect_args = {"connect_timeout": 10} if is_postgres(database_uri) else {}
    engine = sqlalchemy.create_engine(database_uri, connect_args=connect_args)
    try:
        with engine.connect() as connection:
            if not sqlalchemy.inspect(connection).has_table("experiments"):
                return None
            row = connection.execute(
                sqlalchemy.text(
                    "SELECT experiment_id FROM experiments WHERE name = :name AND lifecycle_stage = 'active'"
                ),
                {"name": name},
            ).first()
    except sqlalchemy.exc.SQLAlchemyError as exc:
        # A statement that reached the driver carries the driver's own error (`orig`): the clearer line.
        orig = exc.orig if isinstance(exc, sqlalchemy.exc.StatementError) else None
        detail = str(orig or exc).strip().splitlines()[0][:300]
        raise ServerError(f"tracking database {shown(database_uri)}: cannot read it ({detail})") from None
    finally:
        engine.dispose()
    return None if row is None else str(row[0])


def server_url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()  # the address others reach it by, not the wildcard it binds
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _require(module: str, why: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ServerError(why)


def prepare(args: argparse.Namespace, environ: Mapping[str, str]) -> tuple[list[str], dict[str, str], str]:
    """(the `mlflow server` command, its environment, what to print): everything short of starting it."""
    folder = Path(args.dir).absolute()
    backend = backend_uri(environ.get("MLFLOW_BACKEND_URI"), folder)
    auth = truthy(environ.get("MLFLOW_AUTH"), "MLFLOW_AUTH")
    admin = environ.get("MLFLOW_ADMIN_USERNAME") or "admin"
    password = check_admin_password(admin, environ.get("MLFLOW_ADMIN_PASSWORD")) if auth else None
    (folder / "artifacts").mkdir(parents=True, exist_ok=True)
    if is_postgres(backend):
        _require(
            "psycopg",
            "a PostgreSQL backend needs the server extra (psycopg 3): pip install -e '.[cpu,server]'",
        )
    if auth:
        _require(
            "flask_wtf",
            "MLFLOW_AUTH=true needs the server extra (mlflow[auth]): pip install -e '.[cpu,server]'",
        )
    from pipeline.tracking.store import runs_page  # the link jobs print: the runs table, our columns

    url = server_url(args.host, args.port)
    if (experiment := experiment_id(backend, args.experiment)) is not None:
        url = runs_page(url, experiment)

    env = dict(environ)
    # Only what MLflow reads: the admin password stays in this process (and, hashed, in the database).
    for name in ("MLFLOW_ADMIN_PASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_AUTH_ADMIN_USERNAME"):
        env.pop(name, None)
    # Through the environment, not argv: a PostgreSQL password would show in `ps`.
    env["MLFLOW_BACKEND_STORE_URI"] = backend
    # MLflow's job runner (7 worker processes) serves GenAI scorers, which this project does not use.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    command = [sys.executable, "-m", "mlflow", "server", f"--host={args.host}", f"--port={args.port}"]
    command.append(f"--artifacts-destination={folder / 'artifacts'}")
    if args.workers:
        command.append(f"--workers={args.workers}")
    where = f"tracking data in {shown(backend)}, artifacts in {folder / 'artifacts'}"
    if password is not None:
        variables, done = accounts(folder, backend, admin, password, args.default_permission)
        env |= variables
        command.append("--app-name=basic-auth")
        where += f"; {done}"
    elif (folder / AUTH_CONFIG).is_file():
        where += (
            f"; NO accounts, although {folder / AUTH_CONFIG} says this server had them (MLFLOW_AUTH=true)"
        )
    return [*command, *args.mlflow_args], env, f"MLflow tracking server at {url}\n  {where}"


def accounts(
    folder: Path, backend: str, admin: str, password: str, default_permission: str
) -> tuple[dict[str, str], str]:
    """Sets up MLflow's basic-auth app: (the variables `mlflow server` needs for it, what was done)."""
    if is_postgres(backend):
        database = backend
    else:
        private_file(folder / AUTH_DATABASE)  # password hashes
        database = f"sqlite:///{folder / AUTH_DATABASE}"
    config_path = folder / AUTH_CONFIG
    write_private(config_path, auth_config_text(database, admin, default_permission))
    os.environ["MLFLOW_AUTH_CONFIG_PATH"] = str(config_path)  # read when ensure_admin imports MLflow's auth
    variables = {
        "MLFLOW_AUTH_CONFIG_PATH": str(config_path),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secret_key(folder),
    }
    done = ensure_admin(database, admin, password)
    return variables, f"accounts in {shown(database)} (admin {admin!r}: {done})"


def parse_args(argv: list[str]) -> argparse.Namespace:
    cut = argv.index("--") if "--" in argv else len(argv)
    ours, theirs = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.tracking.server",
        description="A team's MLflow tracking server: SQLite or PostgreSQL; accounts with MLFLOW_AUTH=true.",
        epilog="Options after -- go to `mlflow server` (e.g. -- --allowed-hosts mlflow.example.com).",
    )
    parser.add_argument(
        "--dir", required=True, help="the server's folder: artifacts, SQLite databases, auth config"
    )
    parser.add_argument("--host", default=os.environ.get("MLFLOW_HOST") or "127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("MLFLOW_PORT") or 5000))
    parser.add_argument("--workers", type=int, default=None, help="uvicorn workers (MLflow's default: 4)")
    parser.add_argument("--experiment", default=EXPERIMENT, help="whose runs page to print")
    parser.add_argument(
        "--default-permission",
        choices=PERMISSIONS,
        default="READ",
        help="what every account may do on experiments it was granted nothing on (MLflow's default: READ)",
    )
    args = parser.parse_args(ours)
    args.mlflow_args = theirs
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        command, env, banner = prepare(args, os.environ)
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(banner, flush=True)
    # This process becomes the server: one process id to stop, and Ctrl-C reaches MLflow directly.
    os.execve(command[0], command, env)


if __name__ == "__main__":
    main()
