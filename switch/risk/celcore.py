"""The CEL engine's native core (``cel.cel``), loaded without the ``cel`` package's
``__init__``.

That ``__init__`` imports the package's command line (``cel.cli``: typer, rich and
prompt_toolkit), about 0.2 s of CPU in every switch process that the rules never use: they
need only ``compile`` and ``Context``, which the native module holds. Once loaded it is
registered under its own name, so a later ``import cel`` (the CLI, a test) reuses it rather
than initialising the extension twice. Any surprise in the package's layout falls back to the
plain import.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_NAME = "cel.cel"


def load() -> ModuleType:
    """The native ``cel.cel`` module (``compile``, ``Context``, ``Program``)."""
    loaded = sys.modules.get(_NAME)
    if loaded is not None:
        return loaded
    package = importlib.util.find_spec("cel")  # finds the package without running it
    where = package.submodule_search_locations if package is not None else None
    if where:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(next(iter(where))) / f"cel{suffix}"
            if path.is_file():
                loader = importlib.machinery.ExtensionFileLoader(_NAME, str(path))
                spec = importlib.util.spec_from_file_location(_NAME, path, loader=loader)
                if spec is None:
                    break
                module = importlib.util.module_from_spec(spec)
                loader.exec_module(module)
                sys.modules[_NAME] = module
                return module
    return importlib.import_module(_NAME)  # the package's own way, CLI and all
