"""The wheel's package list, found rather than kept by hand (metadata is in pyproject.toml).

``hookspecs/`` and ``contrib_providers/`` live at the top of the repository, where plugin authors
look for them, but install inside the ``ai_assistant`` package, so the wheel adds no generic
top-level names. Every folder below the three roots is found (``contrib_providers/`` itself has
no ``__init__.py``), so a new subpackage or bundled plugin folder cannot be left out of the wheel.
"""

from setuptools import find_namespace_packages, setup

MOVED = {
    "hookspecs": "ai_assistant.hookspecs",
    "contrib_providers": "ai_assistant.contrib_providers",
}


def found(root: str) -> list[str]:
    return find_namespace_packages(include=[root, f"{root}.*"], exclude=["*__pycache__*"])


packages = found("ai_assistant")
for folder, package in MOVED.items():
    packages += [package + name[len(folder) :] for name in found(folder)]

setup(packages=packages, package_dir={package: folder for folder, package in MOVED.items()})
