"""Shared fixtures: an isolated project directory and a runner for the real CLI."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from click.testing import CliRunner, Result

from ai_assistant.cli import cli

REPO = Path(__file__).resolve().parent.parent

ECHO_SETTINGS = """\
[default.models.echo]
models = [{ id = "echo" }]
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory) -> None:
    """No AI_ASSISTANT_* variable from the developer's shell leaks into a test, no user-level
    settings are read, and nothing is written to the developer's own data directory."""
    for name in list(os.environ):
        if name.startswith("AI_ASSISTANT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data")))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))


class Project:
    """A temporary project directory with its own settings and plugins folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.plugins = root / "plugins"
        self.plugins.mkdir()
        self.base_settings = ""  # kept by every settings() call (a fixture's own setup)

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        if path.name == ".secrets.toml":
            path.chmod(0o600)  # as the README says; a readable one is warned about
        return path

    def settings(self, text: str = "") -> Path:
        base = '[default.plugins]\ndirs = ["plugins"]\n\n' + ECHO_SETTINGS + self.base_settings
        return self.write("settings.toml", base + textwrap.dedent(text))

    def plugin(self, name: str, text: str) -> Path:
        return self.write(f"plugins/{name}.py", text)

    def run(
        self, *args: str, env: dict[str, str] | None = None, input: str | None = None
    ) -> Result:
        return run(*args, env=env, input=input)


def run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    """Invoke the real CLI in-process, stdout and stderr kept apart."""
    return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)


def imports_of(cwd: Path, *args: str, watched: tuple[str, ...]) -> tuple[str, list[str]]:
    """``ai-assistant ARGS`` in a fresh process in ``cwd`` (what a command pays for at start
    depends on what no earlier test imported): its standard output, and which of the
    ``watched`` modules it imported."""
    code = (
        "import sys\nfrom ai_assistant.cli import main\n"
        f"sys.argv = ['ai-assistant', *{list(args)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('IMPORTED', [m for m in {list(watched)!r} if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True)
    out, marker, imported = done.stdout.rpartition("IMPORTED ")
    assert marker, f"it did not finish: {done.stdout[-500:]!r} {done.stderr[-1000:]!r}"
    return out, ast.literal_eval(imported.strip())


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.chdir(tmp_path)
    proj = Project(tmp_path)
    proj.settings()
    return proj


GOOD_PLUGIN = """\
from ai_assistant import hookimpl


def build(name):
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model=name, base_url="http://127.0.0.1:9/v1", api_key="unused")


@hookimpl
def register_models(config, registry):
    section = config.get("models.my_provider") or {}
    for m in section.get("models", []):
        registry.register(m["model_name"], factory=lambda m=m: build(m["model_name"]),
                          endpoint=m["endpoint"])
"""

MY_PROVIDER_SETTINGS = """
[default.models.my_provider]
models = [
  { model_name = "mine-small", endpoint = "http://127.0.0.1:8000/v1" },
  { model_name = "mine-large", endpoint = "http://127.0.0.1:8001/v1" },
]
"""


SECRET_KEY = "sk-test-secret-4242"

CHAT_SETTINGS = """
[default.storage]
path = "history.db"

[default.models.openai_compatible]
endpoint = "{url}"
max_retries = 0
timeout = 5
models = [
  {{ model_name = "ok", id = "good" }},
  {{ model_name = "e429", id = "limited" }},
  {{ model_name = "e500", id = "broken" }},
  {{ model_name = "e503", id = "unavailable" }},
  {{ model_name = "e401", id = "locked" }},
  {{ model_name = "e400", id = "picky" }},
  {{ model_name = "slow-3", id = "slow", timeout = 0.5 }},
  {{ model_name = "drop", id = "flaky" }},
  {{ model_name = "gated", id = "gated" }},
  {{ model_name = "any", id = "down", endpoint = "http://127.0.0.1:9/v1" }},
]

[default.chat]
default_model = "good"
[default.chat.fallbacks]
limited = ["good"]
broken = ["down", "echo"]
locked = ["good"]
slow = ["good"]
down = ["good"]
picky = ["good"]
"""


@pytest.fixture(scope="session")
def upstream():
    from fake_openai import FakeOpenAI

    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def chat_project(project, upstream):
    """A project whose openai_compatible models point at the fake upstream."""
    project.base_settings = CHAT_SETTINGS.format(url=upstream.url)
    project.settings()
    project.write(
        ".secrets.toml", f'[default.models.openai_compatible]\napi_key = "{SECRET_KEY}"\n'
    )
    upstream.reset()
    return project


# -- PostgreSQL for the tests ----------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """A PostgreSQL server's URL: AI_ASSISTANT_TEST_POSTGRES_URL, or one the pgserver wheel
    starts for the session (no server needs to be installed)."""
    url = os.environ.get("AI_ASSISTANT_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    pgserver = pytest.importorskip("pgserver", reason="pip install pgserver (the test extra)")
    # (not under pytest's tmp folder: run as root, pgserver starts the server as its own user,
    # which must be able to reach the data folder)
    data = tempfile.mkdtemp(prefix="ai-assistant-pg-")
    server = pgserver.get_server(data, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server):
    """A new, empty database on the test server, dropped afterwards."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    parts = urlsplit(postgres_server)
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
