"""Embeddings models from plugins: the bundled providers' [default.embeddings.<plugin>] sections,
the offline `hashing` model, and `ai-assistant embeddings list/show`, as a user sees them."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import time

import pytest
from conftest import REPO, imports_of, run
from fake_openai import EMBEDDING_DIMENSION, fake_embedding

from ai_assistant import load_host
from ai_assistant.errors import ModelUnavailableError

MODELS_KEY = "sk-models-key-0001"
EMBEDDINGS_KEY = "sk-embeddings-key-0002"


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


@pytest.fixture
def upstream_project(project, upstream):
    """Embeddings models of openai_compatible and ollama served by the fake upstream."""
    project.settings(f"""
        [default.embeddings.openai_compatible]
        endpoint = "{upstream.url}"
        max_retries = 0
        models = [
          {{ model_name = "emb-small", id = "small" }},
          {{ model_name = "emb-short", id = "short", dimension = 8, batch_size = 2 }},
          {{ model_name = "e429", id = "limited" }},
        ]

        [default.embeddings.ollama]
        base_url = "{upstream.url}"
        models = [{{ model_name = "nomic-embed-text" }}]
    """)
    upstream.requests.clear()
    return project


def embedding_requests(upstream) -> list[dict]:
    return [r for r in upstream.requests if r["path"].endswith("/embeddings")]


# --- the bundled OpenAI-protocol providers -------------------------------------------------


def test_openai_compatible_embeds_through_the_upstream_offline(upstream_project, upstream):
    import tiktoken

    def no_download(*args, **kwargs):
        raise AssertionError("tiktoken must not be used (it downloads its encodings)")

    texts = ["Reset my password", "Deploying a service with Helm"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tiktoken, "encoding_for_model", no_download)
        patch.setattr(tiktoken, "get_encoding", no_download)
        host = load_host()
        model = host.embeddings.get("small").get()
        vectors = model.embed_documents(texts)
        query = asyncio.run(model.aembed_query("reset password"))

    assert type(model).__name__ == "OpenAIEmbeddings"
    assert vectors == [pytest.approx(fake_embedding(words(t))) for t in texts]
    assert len(vectors[0]) == EMBEDDING_DIMENSION
    assert query == pytest.approx(fake_embedding(["reset", "password"]))
    first = embedding_requests(upstream)[0]["body"]
    # plain text in (every OpenAI-compatible server takes it), floats out, no dimensions asked
    assert first["input"] == texts
    assert first["model"] == "emb-small"
    assert first["encoding_format"] == "float"
    assert "dimensions" not in first


def test_dimension_is_asked_for_and_batch_size_splits_requests(upstream_project, upstream):
    host = load_host()
    vectors = host.embeddings.get("short").get().embed_documents(["a b", "c d", "e"])
    assert [len(v) for v in vectors] == [8, 8, 8]
    assert vectors[0] == pytest.approx(fake_embedding(["a", "b"], 8))
    bodies = [r["body"] for r in embedding_requests(upstream)]
    assert [b["input"] for b in bodies] == [["a b", "c d"], ["e"]]
    assert {b["dimensions"] for b in bodies} == {8}
    listed = {e["id"]: e for e in json.loads(run("embeddings", "--json").stdout)}
    assert listed["short"]["dimension"] == 8
    assert listed["short"]["batch_size"] == 2


def test_an_upstream_error_reaches_the_caller(upstream_project, upstream):
    host = load_host()
    with pytest.raises(Exception, match="Rate limit reached"):
        host.embeddings.get("limited").get().embed_documents(["hello"])
    assert [r["body"]["model"] for r in embedding_requests(upstream)] == ["e429"]


def test_ollama_embeds_through_its_openai_compatible_endpoint(upstream_project, upstream):
    host = load_host()
    item = host.embeddings.get("nomic-embed-text")
    assert item.status == "ready" and item.info["base_url"] == upstream.url
    assert item.get().embed_query("hi there") == pytest.approx(fake_embedding(["hi", "there"]))
    assert embedding_requests(upstream)[-1]["headers"]["authorization"] == "Bearer ollama"


def test_embeddings_use_the_providers_chat_key_unless_they_have_their_own(project, upstream):
    # not on loopback: a key is needed, and there is none
    project.settings("""
        [default.embeddings.openai_compatible]
        endpoint = "https://api.example.invalid/v1"
        models = [{ model_name = "emb", id = "shared" }, { model_name = "emb", id = "own" }]
    """)
    result = run("embeddings", "list")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[2:]}
    assert rows["shared"].endswith("missing secret")
    assert "secrets set embeddings.openai_compatible.api_key" in result.stderr
    assert "AI_ASSISTANT_EMBEDDINGS__OPENAI_COMPATIBLE__API_KEY" in result.stderr
    assert result.stderr.startswith("note: an embeddings model needs a secret")

    project.settings(f"""
        [default.embeddings.openai_compatible]
        endpoint = "{upstream.url}"
        models = [
          {{ model_name = "emb", id = "shared" }},
          {{ model_name = "emb", id = "own", api_key = "{EMBEDDINGS_KEY}" }},
        ]
    """)
    project.write(
        ".secrets.toml", f'[default.models.openai_compatible]\napi_key = "{MODELS_KEY}"\n'
    )
    upstream.requests.clear()
    host = load_host()
    for item_id in ("shared", "own"):
        host.embeddings.get(item_id).get().embed_query("hello")
    keys = [r["headers"]["authorization"] for r in embedding_requests(upstream)]
    assert keys == [f"Bearer {MODELS_KEY}", f"Bearer {EMBEDDINGS_KEY}"]
    listed = run("embeddings", "show", "own", "--json").stdout
    assert EMBEDDINGS_KEY not in listed and MODELS_KEY not in listed


def test_the_chat_key_from_the_environment_also_serves_embeddings(project):
    project.settings("""
        [default.embeddings.openai_compatible]
        models = [{ model_name = "text-embedding-3-small", endpoint = "https://api.openai.com/v1" }]
    """)
    env = {"AI_ASSISTANT_MODELS__OPENAI_COMPATIBLE__API_KEY": MODELS_KEY}
    result = run("embeddings", "list", "--format", "json", env=env)
    [remote] = [e for e in json.loads(result.stdout) if e["plugin"] == "openai_compatible"]
    assert remote["status"] == "ready"
    assert MODELS_KEY not in result.output


def test_a_missing_secret_is_named_with_its_fix_when_used(project):
    project.settings("""
        [default.embeddings.openai_compatible]
        models = [{ model_name = "text-embedding-3-small", endpoint = "https://api.openai.com/v1" }]
    """)
    host = load_host()
    item = host.embeddings.get("text-embedding-3-small")
    assert item.status == "missing secret"
    with pytest.raises(ModelUnavailableError) as caught:
        item.get()
    assert "embeddings model 'text-embedding-3-small' needs" in str(caught.value)
    assert "embeddings.openai_compatible.api_key" in str(caught.value)
    assert "AI_ASSISTANT_EMBEDDINGS__OPENAI_COMPATIBLE__API_KEY" in caught.value.hint
    shown = json.loads(run("embeddings", "show", "text-embedding-3-small", "--json").stdout)
    assert shown["missing"] == ["embeddings.openai_compatible.api_key"]
    assert "secrets set embeddings.openai_compatible.api_key" in shown["fix"]


def test_builders_pass_the_settings_to_langchain(project):
    project.settings("""
        [default.embeddings.openai_compatible]
        api_key = "sk-test-key-0003"
        timeout = 7
        dimension = 256
        models = [
          { model_name = "text-embedding-3-large", endpoint = "https://api.openai.com/v1" },
          { model_name = "bge-m3", endpoint = "https://vllm.example.invalid/v1", id = "bge" },
        ]
        [default.embeddings.azure_openai]
        endpoint = "https://res.openai.azure.com/"
        api_key = "az-test-key-0004"
        model_name = "text-embedding-3-small"
        dimension = 512
        batch_size = 16
        models = [{ deployment = "embed-small" }]
        [default.embeddings.ollama]
        models = [{ model_name = "nomic-embed-text" }]
    """)
    host = load_host()
    openai = host.embeddings.get("text-embedding-3-large").get()
    assert openai.dimensions == 256 and openai.request_timeout == 7
    assert openai.check_embedding_ctx_length  # OpenAI's own API takes tokens
    vllm = host.embeddings.get("bge").get()
    assert not vllm.check_embedding_ctx_length  # another server gets plain text
    assert vllm.openai_api_base == "https://vllm.example.invalid/v1"
    azure = host.embeddings.get("embed-small").get()
    assert type(azure).__name__ == "AzureOpenAIEmbeddings"
    assert azure.deployment == "embed-small" and azure.dimensions == 512
    assert azure.chunk_size == 16 and azure.openai_api_version == "2024-10-21"
    assert host.embeddings.get("embed-small").info["dimension"] == 512
    ollama = host.embeddings.get("nomic-embed-text").get()
    assert ollama.openai_api_base == "http://localhost:11434/v1"


# --- hashing ----------------------------------------------------------------------------------

HASHING_VECTOR = """
import hashlib, json, sys
from ai_assistant import load_host
model = load_host().embeddings.get("hashing").get()
vectors = model.embed_documents(["The quick brown fox", "Ünïcode wörds, numbers 42"])
print(hashlib.sha256(json.dumps(vectors).encode()).hexdigest())
"""


def test_hashing_is_always_there_ready_and_offline(project):
    result = run("embeddings", "list")
    assert result.exit_code == 0, result.output
    header, _rule, row = result.stdout.splitlines()[:3]
    assert header.split() == ["ID", "PLUGIN", "MODEL", "DIMENSION", "ENDPOINT", "STATUS"]
    assert row.split() == ["hashing", "hashing", "word-hashing", "384", "ready"]
    assert result.stderr == ""


def test_hashing_gives_the_same_vectors_in_every_process(project):
    hashes = {
        subprocess.run(
            [sys.executable, "-c", HASHING_VECTOR],
            cwd=project.root,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    vectors = (
        load_host()
        .embeddings.get("hashing")
        .get()
        .embed_documents(["The quick brown fox", "Ünïcode wörds, numbers 42"])
    )
    assert hashes == {hashlib.sha256(json.dumps(vectors).encode()).hexdigest()}


def test_hashing_scores_texts_that_share_words_higher(project):
    model = load_host().embeddings.get("hashing").get()
    query = model.embed_query("How do I reset my password?")
    close, far = model.embed_documents(
        ["To reset a password, open settings and choose reset password.", "Kafka topic retention"]
    )
    assert cosine(query, close) > 0.4 > 0.1 > cosine(query, far)
    assert math.isclose(math.fsum(v * v for v in close), 1.0)
    assert model.embed_query("RESET, my password!") == model.embed_query("reset my password")
    assert model.embed_documents([]) == []
    assert set(model.embed_query("...")) == {0.0}  # no word: the zero vector
    assert asyncio.run(model.aembed_documents(["reset my password"])) == [
        model.embed_query("reset my password")
    ]


def test_hashing_dimension_and_more_models_from_settings(project):
    project.settings("""
        [default.embeddings.hashing]
        dimension = 64
        models = [{ id = "hashing-1024", dimension = 1024 }]
    """)
    result = run("embeddings", "list", "--format", "ids")
    assert result.stdout.split() == ["hashing", "hashing-1024"]
    host = load_host()
    assert len(host.embeddings.get("hashing").get().embed_query("hi")) == 64
    assert len(host.embeddings.get("hashing-1024").get().embed_query("hi")) == 1024
    listed = {e["id"]: e["dimension"] for e in json.loads(run("embeddings", "--json").stdout)}
    assert listed == {"hashing": 64, "hashing-1024": 1024}


def test_hashing_embeds_thousands_of_chunks_a_second(project):
    import random

    rng = random.Random(7)
    vocabulary = [
        "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(5000)
    ]
    chunks = [" ".join(rng.choices(vocabulary, k=170))[:1000] for _ in range(2000)]
    started = time.perf_counter()
    model = load_host().embeddings.get("hashing").get()
    for start in range(0, len(chunks), 64):  # in knowledge.batch_size batches
        model.embed_documents(chunks[start : start + 64])
    rate = len(chunks) / (time.perf_counter() - started)
    assert rate > 1000, f"{rate:.0f} chunks/s"


# --- the CLI and validation -------------------------------------------------------------------


def test_embeddings_list_formats_and_filters(upstream_project):
    result = run("embeddings", "list", "--format", "json")
    assert result.exit_code == 0, result.output
    items = {e["id"]: e for e in json.loads(result.stdout)}
    assert items["small"] == {
        "id": "small",
        "plugin": "openai_compatible",
        "status": "ready",  # the endpoint is on loopback: no key needed
        "model_name": "emb-small",
        "endpoint": items["small"]["endpoint"],
    }
    assert items["hashing"]["dimension"] == 384
    ids = run("embeddings", "--format", "ids").stdout.split()
    assert ids == ["hashing", "nomic-embed-text", "small", "short", "limited"]
    table = run("embeddings", "list", "--plugin", "ollama").stdout.splitlines()
    assert table[0].split() == ["ID", "PLUGIN", "MODEL", "DIMENSION", "ENDPOINT", "STATUS"]
    assert table[2].split()[:3] == ["nomic-embed-text", "ollama", "nomic-embed-text"]
    assert len(table) == 3
    short = run("embeddings", "list").stdout.splitlines()[5]
    assert short.split()[:4] == ["short", "openai_compatible", "emb-short", "8"]
    empty = run("embeddings", "list", "--plugin", "echo")
    assert empty.exit_code == 0 and empty.stdout == ""
    assert "plugin 'echo' registered no embeddings models" in empty.stderr


def test_embeddings_show_and_unknown_ids(project):
    result = run("embeddings", "show", "hashing")
    assert result.exit_code == 0
    assert "plugin      hashing" in result.stdout and "dimension   384" in result.stdout
    unknown = run("embeddings", "show", "hashin")
    assert unknown.exit_code == 1
    assert "unknown embeddings model 'hashin'" in unknown.stderr
    assert "did you mean 'hashing'?" in unknown.stderr
    assert "Traceback" not in unknown.output


def test_a_bad_embeddings_section_is_a_clear_validate_finding(project):
    project.settings("""
        [default.embeddings.openai_compatible]
        dimensions = 8
        models = [
          { endpoint = "http://127.0.0.1:8000/v1" },
          { model_name = "ok", endpoint = "http://127.0.0.1:8000/v1", dimension = "big" },
        ]
        [default.embeddings.hashing]
        dimension = 0
    """)
    result = run("config", "validate")
    assert result.exit_code == 1
    out = result.stdout
    assert "embeddings.openai_compatible.dimensions: unknown key (did you mean 'dimension'?)" in out
    assert (
        'embeddings.openai_compatible.models[0].model_name: is required: add model_name = "..."'
        in out
    )
    assert "embeddings.openai_compatible.models[1].dimension: must be an integer" in out
    assert "embeddings.hashing.dimension: must be at least 1" in out
    # the broken entries are skipped (and said so), the others still listed
    listed = run("embeddings", "--format", "ids")
    assert listed.stdout.split() == ["hashing"]


def test_an_embeddings_section_that_is_not_a_table_is_named(project):
    project.settings("""
        [default.embeddings]
        ollama = "nomic-embed-text"
    """)
    result = run("config", "validate")
    assert result.exit_code == 1
    assert "embeddings.ollama: must be a table [default.embeddings.ollama]" in result.stdout


def test_listing_embeddings_imports_no_sdk_and_no_numpy():
    heavy = ("langchain_openai", "openai", "langchain_core", "httpx", "numpy", "tiktoken")
    out, imported = imports_of(REPO, "embeddings", "list", watched=heavy)
    assert "hashing" in out and imported == []


def test_the_readmes_embeddings_settings_list_as_described(project):
    text = (REPO / "README.md").read_text()
    start = text.index("### Embeddings")
    block = re.search(r"```toml\n(.*?)```", text[start:], re.S).group(1)
    project.settings(block)
    listed = {e["id"]: e for e in json.loads(run("embeddings", "--json").stdout)}
    status = {item_id: item["status"] for item_id, item in listed.items()}
    assert status == {
        "hashing": "ready",
        "text-embedding-3-small": "missing secret",
        "large-512": "missing secret",
        "local": "ready",
        "azure-small": "missing secret",
        "nomic-embed-text": "ready",
    }
    assert listed["large-512"]["dimension"] == 512
    validate = run("config", "validate")
    assert validate.exit_code == 0, validate.output
    # (warnings are expected: the example's hosted models have no key yet)
    assert "0 errors," in validate.stdout and "already registered" not in validate.stdout


def test_config_validate_reports_an_embeddings_secret_and_an_unread_section(project):
    project.settings(
        '[default.embeddings.openai_compatible]\nendpoint = "https://api.example.com/v1"\n'
        'models = [{ model_name = "text-embedding-3-small" }]\n'
        "[default.embeddings.opneai_compatible]\nmodels = []\n"
    )
    result = project.run("config", "validate")
    out = result.output
    assert "embeddings.openai_compatible.api_key" in out
    assert "embeddings model 'text-embedding-3-small' cannot be used" in out
    assert "embeddings.opneai_compatible: no plugin of this name is loaded" in out
    assert "(did you mean 'openai_compatible'?)" in out
