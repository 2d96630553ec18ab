"""Import a generated package from its directory (without putting its parent on sys.path for
good): `import_package("build/hope")` -> the module with Config and Model."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def import_package(path: str | Path, name: str | None = None):
    path = Path(path).resolve()
    init = path / "__init__.py"
    if not init.is_file():
        raise FileNotFoundError(f"{path} is not a compiled nslang package (no __init__.py); "
                                "run `nslang compile SPEC -o DIR` first")
    name = name or f"nslang_build_{path.name}"
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(path)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
