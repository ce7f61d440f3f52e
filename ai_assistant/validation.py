"""``config validate``: every problem with the settings and plugins, found in one pass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import DEFAULT_ENV, check_host_settings, defined_environments
from .errors import did_you_mean
from .host import Host
from .plugins import FAILED
from .registry import MISSING_SECRET
from .schema import unknown_keys

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Finding:
    severity: str
    key: str
    message: str


def validate(host: Host) -> list[Finding]:
    """Errors (settings that are wrong) and warnings (things that will not work as they are)."""
    config, plugins = host.config, host.plugins
    findings = [Finding(ERROR, key, msg) for key, msg in check_host_settings(config)]
    host_keys = {f.key for f in findings}
    findings.extend(Finding(WARNING, key, msg) for key, msg in config.warnings)

    chosen_env = config.env not in ("default", DEFAULT_ENV)  # picked with --env/AI_ASSISTANT_ENV
    if config.files and chosen_env and config.env not in defined_environments(config):
        findings.append(
            Finding(
                WARNING,
                "env",
                f"environment {config.env!r} has no table in "
                "any settings file, so only [default] applies",
            )
        )

    reported_keys: set[str] = set()
    for key, message in plugins.validate_config():
        if key not in host_keys:  # the host's own finding on a key says it already
            findings.append(Finding(ERROR, key, message))
        reported_keys.add(key)

    for info in plugins.report:
        if info.status == FAILED:
            findings.append(Finding(ERROR, f"plugin {info.name}", info.reason or "failed"))
        for problem in info.problems:
            if problem.split(":", 1)[0] not in reported_keys:
                findings.append(Finding(WARNING, f"plugin {info.name}", problem))
    findings.extend(Finding(WARNING, key, message) for key, message in plugins.warnings)

    for key, known in unknown_keys(config.as_dict()):
        where = config.origin(key)
        findings.append(
            Finding(
                WARNING,
                key,
                f"not a setting ai-assistant knows{did_you_mean(key.rsplit('.', 1)[-1], known)}"
                + (f" (set in {where})" if where else ""),
            )
        )

    loaded = set(plugins.plugins)
    for table in ("models", "embeddings"):
        sections = config.get(table)
        for section in sections if isinstance(sections, Mapping) else ():
            if str(section).lower() not in loaded:
                findings.append(
                    Finding(
                        WARNING,
                        f"{table}.{section}",
                        "no plugin of this name is loaded, so nothing reads this section"
                        + did_you_mean(str(section).lower(), loaded),
                    )
                )

    ids = set(host.registry.ids())

    def check_ids(key: str, model_ids: list[Any]) -> None:
        for unknown in (m for m in model_ids if isinstance(m, str) and m not in ids):
            message = f"no model {unknown!r} is registered{did_you_mean(unknown, ids)}"
            findings.append(Finding(WARNING, key, message))

    check_ids("chat.default_model", [config.get("chat.default_model")])
    fallbacks = config.get("chat.fallbacks")
    for model_id, chain in fallbacks.items() if isinstance(fallbacks, Mapping) else ():
        check_ids(
            f"chat.fallbacks.{model_id}", [model_id, *(chain if isinstance(chain, list) else [])]
        )

    findings.extend(_knowledge_findings(host))

    for item in [*host.registry, *host.embeddings]:
        if item.status == MISSING_SECRET:
            findings.append(
                Finding(
                    WARNING,
                    ", ".join(item.missing_secrets),
                    f"not set, so {item.kind} {item.id!r} cannot be used: {item.fix_hint()}",
                )
            )
    return findings


def _knowledge_findings(host: Host) -> list[Finding]:
    """Each knowledge source names a registered ingestor and embeddings model; the store URL
    is one a registered vector store opens. (Only read when knowledge is configured.)"""
    if not host.config.get("knowledge"):
        return []
    from .errors import AiAssistantError
    from .knowledge.settings import KnowledgeSettings

    try:
        settings = KnowledgeSettings(host)
    except AiAssistantError as exc:
        return [Finding(ERROR, "knowledge.sources", str(exc))]
    findings = []
    try:
        host.vector_stores.for_url(settings.resolved_store_url())
    except AiAssistantError as exc:
        findings.append(Finding(ERROR, "knowledge.store", f"{exc}; {exc.hint}"))
    ingestors, embeddings = host.ingestors.ids(), host.embeddings.ids()
    for name, source in settings.sources.items():
        key = f"knowledge.sources.{name}"
        if not source.ingestor:
            findings.append(Finding(ERROR, f"{key}.ingestor", 'is required, like "files"'))
        elif source.ingestor not in ingestors:
            findings.append(
                Finding(
                    ERROR,
                    f"{key}.ingestor",
                    f"no ingestor {source.ingestor!r} is registered"
                    + (
                        did_you_mean(source.ingestor, ingestors)
                        or f" (known: {', '.join(ingestors)})"
                    ),
                )
            )
        if source.embeddings not in embeddings:
            where = (
                f"{key}.embeddings" if source.options.get("embeddings") else "knowledge.embeddings"
            )
            findings.append(
                Finding(
                    ERROR,
                    where,
                    f"no embeddings model {source.embeddings!r} is registered"
                    + did_you_mean(source.embeddings, embeddings)
                    + " (see `ai-assistant embeddings list`)",
                )
            )
    return findings
