"""The ``files`` ingestor: text files under local folders, as documents.

Options of a source (``[default.knowledge.sources.<name>]``):

- ``paths``: folders or files, relative to the settings file (required). A path that does not
  exist is an error, so a typo never deletes a source's documents.
- ``include``: glob patterns of files to take, relative to each folder (default: common text
  formats, below). ``exclude``: patterns to leave out (hidden files and folders always are).
- ``max_file_bytes``: larger files are skipped and reported (default 50 MB).

A file that looks binary (NUL bytes or control characters in its first 8 KB, or a known binary
signature) is skipped and counted; one that is not UTF-8 is decoded with replacement characters
and reported. A document's id is its path relative to the settings folder (absolute outside it).
"""

from __future__ import annotations

import fnmatch
import os
from datetime import UTC, datetime
from pathlib import Path

from ai_assistant.knowledge import Document

DEFAULT_INCLUDE = [
    "**/*.md",
    "**/*.markdown",
    "**/*.txt",
    "**/*.rst",
    "**/*.adoc",
    "**/*.html",
    "**/*.yaml",
    "**/*.yml",
    "**/*.json",
    "**/*.toml",
]
MAX_FILE_BYTES = 50 * 1024 * 1024
SAMPLE = 8192
BINARY_SIGNATURES = (b"%PDF", b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"PK\x03\x04", b"\x7fELF")
TEXT_CONTROLS = {7, 8, 9, 10, 11, 12, 13, 27}


def _patterns(value, default):
    if value is None:
        return list(default)
    if isinstance(value, str):
        return [p.strip() for p in value.split(",") if p.strip()]
    return [str(p) for p in value]


def _matches(relative: str, patterns) -> bool:
    # "**/*.md" also matches a file at the top ("a.md"), as users expect
    return any(
        fnmatch.fnmatchcase(relative, p)
        or (p.startswith("**/") and fnmatch.fnmatchcase(relative, p[3:]))
        for p in patterns
    )


def looks_binary(sample: bytes) -> bool:
    if sample.startswith(BINARY_SIGNATURES):
        return True
    if not sample:
        return False
    controls = sum(1 for b in sample if b < 32 and b not in TEXT_CONTROLS)
    return b"\x00" in sample[:1024] and sample.count(0) > 8 or controls / len(sample) > 0.1


def _files(folder: Path, include, exclude):
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        base = Path(dirpath)
        for filename in sorted(filenames):
            if filename.startswith("."):
                continue
            path = base / filename
            relative = path.relative_to(folder).as_posix()
            if _matches(relative, include) and not _matches(relative, exclude):
                yield path


def _document_id(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def _title(text: str, path: Path) -> str:
    for line in text.splitlines()[:20]:
        if line.startswith("# "):
            return line[2:].strip()
    return path.name


def ingest_files(source):
    options = source.options
    paths = options.get("paths")
    if isinstance(paths, str):
        paths = [paths]
    if not paths:
        raise ValueError(f'knowledge.sources.{source.name}.paths is not set: add paths = ["docs"]')
    include = _patterns(options.get("include"), DEFAULT_INCLUDE)
    exclude = _patterns(options.get("exclude"), [])
    limit = int(options.get("max_file_bytes") or MAX_FILE_BYTES)
    found: list[Path] = []
    for value in paths:
        path = source.path(str(value))
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(_files(path, include, exclude))
        else:
            raise FileNotFoundError(
                f"knowledge.sources.{source.name}.paths: {value!r} does not exist "
                f"(looked at {path})"
            )
    source.expect(len(found))
    for path in found:
        doc_id = _document_id(path, source.root)
        try:
            stat = path.stat()
            if stat.st_size > limit:
                source.skip(doc_id, f"larger than max_file_bytes ({limit} bytes)")
                continue
            data = path.read_bytes()
        except OSError as exc:
            source.skip(doc_id, f"cannot be read: {exc.strerror or exc}")
            continue
        if looks_binary(data[:SAMPLE]):
            source.skip(doc_id, "binary")
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("utf-8", errors="replace")
            source.warn(doc_id, "not UTF-8: decoded with replacement characters")
        if text.startswith("\ufeff"):
            text = text[1:]
        updated = datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(timespec="seconds")
        yield Document(
            doc_id,
            text,
            {"path": doc_id, "title": _title(text, path), "updated": updated},
        )
