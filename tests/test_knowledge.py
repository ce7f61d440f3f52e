"""Knowledge end to end: sources ingested through the CLI (add, change, shrink, delete,
interrupt and resume, bad files, failing embeddings, a changed model), searched through the CLI,
the Python API and the gateway, and cited by chats (``-K`` and the ``search_knowledge`` tool).
The embedded store and the offline ``hashing`` embeddings are real; so is PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import imports_of

from ai_assistant import Chat, load_host

KNOWLEDGE = """
[default.knowledge]
embeddings = "{embeddings}"
store = "{store}"
chunk_size = 200
chunk_overlap = 20
{extra}
[default.knowledge.sources.handbook]
ingestor = "files"
paths = ["{docs}"]
"""


def configure(
    project,
    extra: str = "",
    docs: str = "docs",
    embeddings: str = "hashing",
    store: str = "knowledge.db",
) -> None:
    """The project's knowledge settings, with ``extra`` keys in [default.knowledge]."""
    project.base_settings = KNOWLEDGE.format(
        extra=extra, docs=docs, embeddings=embeddings, store=store
    )
    project.settings()


DEPLOY = "# Deploying\n\nTo deploy the billing service, run make deploy from the bastion host.\n"
HOLIDAYS = (
    "# Holidays\n\nThe office is closed on public holidays and between Christmas and New Year.\n"
)
ONCALL = "# On call\n\nThe on-call engineer answers pages within fifteen minutes, day and night.\n"


@pytest.fixture
def kproject(project):
    configure(project)
    project.write("docs/deploy.md", DEPLOY)
    project.write("docs/holidays.md", HOLIDAYS)
    project.write("docs/team/oncall.md", ONCALL)
    return project


def ingest(project, *args):
    result = project.run("knowledge", "ingest", "--json", *args)
    reports = json.loads(result.stdout) if result.stdout.strip() else None
    return result, reports


def test_ingest_adds_then_an_unchanged_rerun_costs_a_hash_check(kproject):
    result, [report] = ingest(kproject)
    assert result.exit_code == 0, result.output
    assert (report["added"], report["updated"], report["unchanged"], report["deleted"]) == (
        3,
        0,
        0,
        0,
    )
    assert report["chunks"] == 3 and report["embedded"] == 3
    result, [again] = ingest(kproject)
    assert (again["added"], again["unchanged"], again["embedded"]) == (0, 3, 0)
    text = kproject.run("knowledge", "ingest")
    assert text.stdout.startswith("handbook: 0 added, 0 updated, 3 unchanged, 0 deleted")


def test_change_shrink_and_delete_are_synchronised(kproject):
    kproject.write(
        "docs/long.md", "# Long\n\n" + "\n\n".join(f"Paragraph {i} " * 8 for i in range(12))
    )
    ingest(kproject)
    chunks_before = _sources(kproject)["chunks"]
    kproject.write("docs/long.md", "# Long\n\nParagraph 0 only now.\n")  # shrank
    kproject.write("docs/deploy.md", DEPLOY + "\nRollbacks use make rollback.\n")  # changed
    (kproject.root / "docs/holidays.md").unlink()  # gone
    result, [report] = ingest(kproject)
    assert result.exit_code == 0, result.output
    assert (report["added"], report["updated"], report["unchanged"], report["deleted"]) == (
        0,
        2,
        1,
        1,
    )
    state = _sources(kproject)
    assert state["documents"] == 3
    assert state["chunks"] == 3  # the trailing chunks of long.md are gone, holidays' too
    assert chunks_before > 6
    hits = _search(kproject, "holidays Christmas")
    assert all(h["document"] != "docs/holidays.md" for h in hits)
    # a changed document keeps the vectors of the chunks it still has, embeds only new text
    kproject.write("docs/deploy.md", DEPLOY + "\nRollbacks use make rollback.\n\nAnd one more.\n")
    _result, [report] = ingest(kproject)
    assert report["updated"] == 1


def _sources(project, name="handbook"):
    result = project.run("knowledge", "sources", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["sources"]
    return next(r for r in rows if r["source"] == name)


def _search(project, query, *args):
    result = project.run("knowledge", "search", "--json", query, *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_search_ranks_the_matching_document_first_with_source_path_and_score(kproject):
    ingest(kproject)
    hits = _search(kproject, "how do I deploy the billing service", "-k", "2")
    assert len(hits) == 2
    assert hits[0]["document"] == "docs/deploy.md" and hits[0]["source"] == "handbook"
    assert hits[0]["path"] == "docs/deploy.md" and hits[0]["title"] == "Deploying"
    assert hits[0]["score"] > hits[1]["score"]
    table = kproject.run("knowledge", "search", "deploy billing")
    assert table.stdout.startswith("[1] handbook: docs/deploy.md  score ")
    assert "make deploy" in table.stdout


def test_search_of_an_unknown_source_or_before_ingest_says_what_to_do(kproject):
    result = kproject.run("knowledge", "search", "deploy")
    assert result.exit_code == 1
    assert "nothing is ingested yet" in result.stderr
    assert "knowledge ingest" in result.stderr and "Traceback" not in result.stderr
    ingest(kproject)
    result = kproject.run("knowledge", "search", "deploy", "--source", "handbok")
    assert result.exit_code == 1
    assert "no knowledge source named 'handbok'" in result.stderr
    assert "did you mean 'handbook'" in result.stderr


def test_no_sources_configured_is_a_clear_error(project):
    result = project.run("knowledge", "ingest")
    assert result.exit_code == 1
    assert "no knowledge sources are configured" in result.stderr
    assert "[default.knowledge.sources." in result.stderr


def test_a_missing_folder_deletes_nothing(kproject):
    ingest(kproject)
    configure(kproject, docs="dcos")
    result, [report] = ingest(kproject)
    assert result.exit_code == 1
    assert "'dcos' does not exist" in report["error"]
    assert report["deleted"] == 0
    assert _sources(kproject)["documents"] == 3


def test_bad_files_are_skipped_reported_or_cleaned(kproject):
    kproject.write("docs/image.md", "")
    (kproject.root / "docs/image.md").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    (kproject.root / "docs/latin1.txt").write_bytes("Caf\xe9 menu: cr\xeapes".encode("latin-1"))
    (kproject.root / "docs/nul.md").write_bytes(b"# Nul\n\nA stray\x00 NUL byte in text.")
    kproject.write("docs/huge.md", "word " * 20_000)
    configure(kproject, "max_document_chars = 5000")
    result = kproject.run("knowledge", "ingest")
    assert result.exit_code == 0, result.output
    assert "6 added" in result.stdout and "1 skipped" in result.stdout
    assert "skipped docs/image.md: binary" in result.stderr
    assert "docs/latin1.txt: not UTF-8: decoded with replacement characters" in result.stderr
    assert "docs/nul.md: NUL bytes were removed" in result.stderr
    assert "docs/huge.md: cut at knowledge.max_document_chars (5000 characters)" in result.stderr
    hits = _search(kproject, "stray NUL byte")
    assert hits[0]["document"] == "docs/nul.md" and "\x00" not in hits[0]["text"]
    huge = [h for h in _search(kproject, "word", "-k", "100") if h["document"] == "docs/huge.md"]
    assert sum(len(h["text"]) for h in huge) <= 5000 + 40 * len(huge)


FLAKY_EMBEDDINGS = """\
import pathlib
from ai_assistant import hookimpl

COUNT = pathlib.Path(__file__).with_name("calls.txt")


def build():
    from langchain_core.embeddings import Embeddings

    class Flaky(Embeddings):
        def embed_documents(self, texts):
            calls = int(COUNT.read_text()) if COUNT.exists() else 0
            COUNT.write_text(str(calls + 1))
            if any("POISON" in t for t in texts):
                raise RuntimeError("the provider refused this batch")
            if calls == 0:
                raise ConnectionError("a blip")  # the first call fails: retried
            return [[1.0, float(len(t) % 7), 0.5] for t in texts]

        def embed_query(self, text):
            return [1.0, 1.0, 0.5]

    return Flaky()


@hookimpl
def register_embeddings(config, registry):
    registry.register("flaky", factory=build)
"""


def test_a_failed_embedding_batch_is_retried_then_reported_and_the_rest_is_kept(kproject):
    kproject.plugin("flaky", FLAKY_EMBEDDINGS)
    kproject.write("docs/poison.md", "POISON pill")
    configure(kproject, "batch_size = 1\nretries = 1", embeddings="flaky")
    result, [report] = ingest(kproject)
    assert result.exit_code == 1
    assert report["added"] == 3  # the blip was retried; the other documents are in
    assert [f["document"] for f in report["failed"]] == ["docs/poison.md"]
    assert "the provider refused this batch" in report["failed"][0]["error"]
    text = kproject.run("knowledge", "ingest")
    assert (
        "docs/poison.md was not indexed" in text.stderr
        and "run the same command again" in text.stderr
    )
    (kproject.root / "docs/poison.md").write_text("cured")
    _result, [report] = ingest(kproject)
    assert (report["added"], report["unchanged"]) == (1, 3)


def test_a_changed_embeddings_model_is_refused_until_reembed(kproject):
    ingest(kproject)
    configure(kproject, embeddings="small")
    kproject.plugin(
        "small",
        "from ai_assistant import hookimpl\n\n"
        "def build():\n"
        "    from langchain_core.embeddings import FakeEmbeddings\n"
        "    return FakeEmbeddings(size=16)\n\n"
        "@hookimpl\n"
        "def register_embeddings(config, registry):\n"
        "    registry.register('small', factory=build)\n",
    )
    result = kproject.run("knowledge", "ingest")
    assert result.exit_code == 1
    assert "holds vectors from embeddings 'hashing'" in result.stderr
    assert "knowledge ingest handbook --reembed" in result.stderr
    assert _sources(kproject)["embeddings"] == "hashing"
    result, [report] = ingest(kproject, "--reembed")
    assert result.exit_code == 0 and report["added"] == 3
    state = _sources(kproject)
    assert (state["embeddings"], state["dimension"]) == ("small", 16)


SLOW_EMBEDDINGS = """\
import time
from ai_assistant import hookimpl


def build():
    from langchain_core.embeddings import Embeddings

    class Slow(Embeddings):
        def embed_documents(self, texts):
            time.sleep(0.15)
            return [[1.0, float(len(t) % 5), 0.25] for t in texts]

        def embed_query(self, text):
            return [1.0, 1.0, 0.25]

    return Slow()


@hookimpl
def register_embeddings(config, registry):
    registry.register("slow", factory=build)
"""


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill"])
def test_an_interrupted_ingest_stays_consistent_and_the_next_run_resumes(kproject, how):
    kproject.plugin("slow", SLOW_EMBEDDINGS)
    configure(kproject, "batch_size = 1", embeddings="slow")
    for i in range(30):
        kproject.write(f"docs/many/{i:02}.md", f"# Page {i}\n\nThe text of page {i}.\n")
    env = {k: v for k, v in os.environ.items()}
    process = subprocess.Popen(
        [sys.executable, "-m", "ai_assistant", "knowledge", "ingest"],
        cwd=kproject.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    db = kproject.root / "knowledge.db"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _stored(db) < 5:
        time.sleep(0.05)
    process.send_signal(how)
    _out, err = process.communicate(timeout=30)
    if how == signal.SIGINT:
        assert process.returncode == 130
        assert "run the same command again" in err and "Traceback" not in err
    done = _stored(db)
    assert 5 <= done < 33
    result, [report] = ingest(kproject)
    assert result.exit_code == 0, result.output
    assert report["added"] == 33 - done and report["unchanged"] == done
    state = _sources(kproject)
    assert state["documents"] == state["chunks"] == 33


def _stored(db: Path) -> int:
    import sqlite3

    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute("SELECT count(*) FROM documents").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_chat_knowledge_puts_passages_in_the_prompt_and_cites_them(kproject, upstream):
    ingest(kproject)
    shown = kproject.run("chat", "-m", "echo", "-K", "--show-prompt", "deploy billing service")
    assert shown.exit_code == 0, shown.output
    assert "[1] handbook: docs/deploy.md (Deploying)" in shown.stderr  # the prompt, as sent
    assert "Sources:\n  - handbook: docs/deploy.md (Deploying)" in shown.stdout
    assert shown.stdout.startswith("echo: deploy billing service")
    # what a real model is sent: the passages in a system message before the question
    kproject.settings(
        f'[default.models.openai_compatible]\nendpoint = "{upstream.url}"\napi_key = "k"\n'
        'models = [{ model_name = "ok", id = "good" }]\n'
    )
    upstream.reset()
    result = kproject.run("chat", "-m", "good", "-K", "--knowledge-k", "1", "deploy billing")
    assert result.exit_code == 0, result.output
    sent = upstream.requests[-1]["body"]["messages"]
    assert [m["role"] for m in sent][-2:] == ["system", "user"]
    assert "[1] handbook: docs/deploy.md (Deploying)" in sent[-2]["content"]
    assert "make deploy from the bastion host" in sent[-2]["content"]
    assert "docs/holidays.md" not in sent[-2]["content"]  # -k 1


def test_chat_knowledge_before_ingest_is_a_clear_error(kproject):
    result = kproject.run("chat", "-m", "echo", "-K", "deploy")
    assert result.exit_code == 1
    assert "nothing is ingested yet" in result.stderr and "Traceback" not in result.stderr


def test_the_search_knowledge_tool_answers_with_cited_sources(kproject):
    ingest(kproject)
    assert "search_knowledge" in kproject.run("tools", "list").stdout
    call = '/tool search_knowledge {"query": "on-call pages", "k": 1}'
    result = kproject.run("chat", "-m", "echo", "-T", "search_knowledge", call)
    assert result.exit_code == 0, result.output
    assert "[1] handbook: docs/team/oncall.md (On call)" in result.stdout
    assert "Sources:\n  - handbook: docs/team/oncall.md (On call)" in result.stdout


def test_python_api_search_and_tool_citations(kproject):
    ingest(kproject)
    host = load_host()
    from ai_assistant.knowledge.search import knowledge_of

    hits = knowledge_of(host).search("public holidays Christmas", k=1)
    assert hits[0].document_id == "docs/holidays.md" and 0 < hits[0].score <= 1
    chat = Chat(host, "echo", tools=["search_knowledge"])
    reply = chat.send('/tool search_knowledge {"query": "deploy billing"}')
    assert reply.sources[0]["path"] == "docs/deploy.md"


def test_the_gateway_searches_and_cites(kproject):
    import httpx

    from ai_assistant.server import create_app

    ingest(kproject)
    kproject.settings('[default.server.tools]\ndefault = ["search_knowledge"]\n')
    app = create_app(load_host())

    async def calls():
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
        ):
            found = await client.get(
                "/api/knowledge/search", params={"query": "deploy billing", "k": 2}
            )
            empty = await client.get("/api/knowledge/search", params={"query": " "})
            bad_k = await client.get("/api/knowledge/search", params={"query": "x", "k": "0"})
            unknown = await client.get(
                "/api/knowledge/search", params={"query": "x", "source": "nope"}
            )
            ask = '/tool search_knowledge {"query": "on-call pages", "k": 1}'
            api = await client.post(
                "/api/chat/message",
                json={"modelId": "echo", "messages": [{"role": "user", "content": ask}]},
            )
            v1 = await client.post(
                "/v1/chat/completions",
                json={"model": "echo", "messages": [{"role": "user", "content": ask}]},
            )
            return found, empty, bad_k, unknown, api, v1

    found, empty, bad_k, unknown, api, v1 = asyncio.run(calls())
    assert found.status_code == 200, found.text
    results = found.json()["results"]
    assert len(results) == 2 and results[0]["path"] == "docs/deploy.md"
    assert {"source", "document", "chunk", "score", "text"} <= set(results[0])
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "query"
    assert bad_k.status_code == 400 and bad_k.json()["error"]["param"] == "k"
    assert unknown.status_code == 400 and "no knowledge source named 'nope'" in unknown.text
    assert api.status_code == 200, api.text
    message = api.json()["message"]
    assert message["sources"][0]["path"] == "docs/team/oncall.md"
    assert "[1] handbook: docs/team/oncall.md" in message["content"]
    assert v1.status_code == 200, v1.text
    assert v1.json()["sources"][0]["path"] == "docs/team/oncall.md"


def test_the_progress_bar_shows_on_a_terminal(kproject):
    pexpect = pytest.importorskip("pexpect")
    for i in range(40):
        kproject.write(f"docs/many/{i:02}.md", f"# Page {i}\n\nThe text of page {i}.\n")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "ai_assistant", "knowledge", "ingest"],
        cwd=str(kproject.root),
        env=dict(os.environ, COLUMNS="100"),
        encoding="utf-8",
        timeout=60,
    )
    child.expect("documents")  # the bar: "handbook ━━━━ 12/43 documents 0:00:00"
    child.expect("handbook: 43 added")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_knowledge_on_postgresql_with_pgvector(kproject, postgres_url):
    configure(kproject, store=postgres_url)
    result, [report] = ingest(kproject)
    assert result.exit_code == 0, result.output
    assert report["added"] == 3
    hits = _search(kproject, "how do I deploy the billing service")
    assert hits[0]["document"] == "docs/deploy.md"
    (kproject.root / "docs/holidays.md").unlink()
    _result, [report] = ingest(kproject)
    assert (report["deleted"], report["unchanged"]) == (1, 2)
    shown = kproject.run("knowledge", "sources")
    password = postgres_url.split("@")[0].rsplit(":", 1)[-1] if "@" in postgres_url else None
    if password and "//" not in password:
        assert password not in shown.output


def test_knowledge_costs_nothing_for_commands_that_do_not_use_it(kproject):
    heavy = (
        "numpy",
        "langchain_text_splitters",
        "ai_assistant.knowledge.search",
        "ai_assistant.storage.vectors.sqlite",
    )
    _out, imported = imports_of(kproject.root, "models", "list", watched=heavy)
    assert imported == []


def test_config_validate_names_an_unknown_ingestor_embeddings_or_store(kproject):
    kproject.settings(
        '[default.knowledge.sources.wiki]\ningestor = "filez"\nembeddings = "hashng"\n'
        '[default.knowledge.sources.notes]\npaths = ["notes"]\n'
    )
    result = kproject.run("config", "validate")
    assert result.exit_code == 1
    out = result.output
    assert "knowledge.sources.wiki.ingestor: no ingestor 'filez' is registered" in out
    assert "(did you mean 'files'?)" in out
    assert "knowledge.sources.wiki.embeddings: no embeddings model 'hashng'" in out
    assert "knowledge.sources.notes.ingestor: is required" in out
    configure(kproject, store="mysql://db/x")
    result = kproject.run("config", "validate")
    assert "knowledge.store: no vector store opens mysql:// URLs" in result.output
    assert "postgresql://" in result.output


def test_ingest_and_search_through_an_openai_compatible_embeddings_server(kproject, upstream):
    configure(kproject, "batch_size = 2", embeddings="remote")
    kproject.settings(
        f'[default.embeddings.openai_compatible]\nendpoint = "{upstream.url}"\n'
        'api_key = "sk-emb-7777"\nmax_retries = 0\n'
        'models = [{ model_name = "emb-small", id = "remote" }]\n'
    )
    upstream.reset()
    result, [report] = ingest(kproject)
    assert result.exit_code == 0, result.output
    assert (report["added"], report["embedded"]) == (3, 3)
    calls = [r for r in upstream.requests if r["path"].endswith("/embeddings")]
    assert [len(c["body"]["input"]) for c in calls] == [2, 1]  # knowledge.batch_size
    assert all(c["body"]["model"] == "emb-small" for c in calls)
    hits = _search(kproject, "deploy the billing service")
    assert hits[0]["document"] == "docs/deploy.md"
    assert "sk-emb-7777" not in result.output


@pytest.mark.parametrize("backend", ["embedded", "postgresql"])
def test_a_source_of_empty_documents_is_ingested_on_every_store(kproject, backend, request):
    store = request.getfixturevalue("postgres_url") if backend == "postgresql" else "k.db"
    configure(kproject, docs="blank", store=store)
    kproject.write("blank/a.md", "")
    kproject.write("blank/b.md", "   \n")
    result, [report] = ingest(kproject)
    assert result.exit_code == 0, result.output
    assert (report["added"], report["chunks"]) == (2, 0)
    state = _sources(kproject)
    assert (state["documents"], state["chunks"], state["dimension"]) == (2, 0, 384)
