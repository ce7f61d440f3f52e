"""`ai-assistant init`: a commented starter settings.toml, here or for the user."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import LOCAL_FILE, SECRETS_FILE, user_config_dir
from ..scaffold import write_starter_settings
from .context import global_options
from .output import shown_path


@click.command("init")
@click.option(
    "--user",
    is_flag=True,
    help="Write into the user-level folder ($XDG_CONFIG_HOME/ai-assistant), whose settings "
    "are used in every folder.",
)
@global_options
def init(user: bool) -> None:
    """Write a commented starter settings.toml and an empty plugins/ folder.

    The offline `echo` model works at once; provider sections are commented out, with their
    keys explained. Inside a git work tree, .secrets.toml and settings.local.toml are added to
    .gitignore. An existing settings.toml is never overwritten."""
    directory = user_config_dir() if user else Path.cwd()
    done = write_starter_settings(directory)
    click.echo(f"wrote {shown_path(done.settings)}")
    if done.plugins_created:
        click.echo(f"made {shown_path(done.plugins)}/ (empty: your own plugins go there)")
    else:
        click.echo(f"kept {shown_path(done.plugins)}/: it was already there")
    if done.gitignore_added:
        click.echo(f"added {', '.join(done.gitignore_added)} to {shown_path(done.gitignore)}")
    elif done.gitignore is not None:
        click.echo(f"{shown_path(done.gitignore)} already lists {SECRETS_FILE} and {LOCAL_FILE}")
    secrets_set = "secrets set"
    if user:
        click.echo(
            "these settings are used in every folder, as the base under a project's own "
            "settings.toml where there is one"
        )
        if _project_settings() is not None:
            secrets_set = "secrets set --user"  # else the project's .secrets.toml gets it
    click.echo("next:")
    steps = [
        ("ai-assistant models list", "echo is ready, offline"),
        ('ai-assistant chat "hello"', ""),
        (
            f"ai-assistant {secrets_set} models.openai_compatible.api_key",
            "after uncommenting a provider",
        ),
        ("ai-assistant plugins new my_provider", "a provider plugin of your own"),
        ("ai-assistant config validate", "checks every section"),
    ]
    width = max(len(command) for command, _ in steps)
    for command, note in steps:
        click.echo(f"  {command.ljust(width)}  # {note}" if note else f"  {command}")


def _project_settings() -> Path | None:
    """The project settings.toml the current folder uses, if any."""
    from ..config import find_settings_file

    return find_settings_file(Path.cwd())
