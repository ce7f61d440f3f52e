"""``python -m ai_assistant``: the same as the ``ai-assistant`` command."""

from .cli import main

main()
