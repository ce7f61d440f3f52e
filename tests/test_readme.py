"""The README's examples work as written."""

from __future__ import annotations

import re

from conftest import REPO


def _block(after: str, language: str) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(after)
    return re.search(rf"```{language}\n(.*?)```", text[start:], re.S).group(1)


def test_the_readmes_provider_plugin_works_against_a_local_server_with_no_key(project, upstream):
    project.plugin("my_provider", _block("## Write a provider plugin", "python"))
    settings = _block("Name its folder and configure it", "toml")
    settings = settings.replace("my-model", "ok").replace("http://localhost:8000/v1", upstream.url)
    project.write("settings.toml", settings)
    upstream.reset()
    listed = project.run("models", "list", "--format", "json")
    assert listed.exit_code == 0, listed.output
    assert '"plugin": "my_provider"' in listed.stdout and '"status": "ready"' in listed.stdout
    result = project.run("chat", "-m", "ok", "hello", "--no-log")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip()
    assert project.run("config", "validate").exit_code == 0


def test_the_readme_links_only_to_files_in_the_repository():
    text = (REPO / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if "://" not in target:
            assert (REPO / target).exists(), target
