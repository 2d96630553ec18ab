"""The data bench/results.py's jobs read: the LM corpus, the NIAH prose haystack made from it, and the
labelled records of the continual stream (given, carried in .gpu_data/, or made from `wiki`)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CARRIED_CORPUS = ROOT / ".gpu_data" / "shakespeare" / "byte-val0.01-seed0"
CARRIED_RECORDS = ROOT / ".gpu_data" / "continual_wiki.jsonl"


def corpus_path(arg: str | None) -> str:
    if arg:
        return arg
    return str(CARRIED_CORPUS) if (CARRIED_CORPUS / "meta.json").is_file() else "shakespeare"


def write_haystack(corpus: str, out: Path) -> Path | None:
    """The validation split of the (byte-level) corpus as one text file, the NIAH prose haystack."""
    try:
        sys.path.insert(0, str(ROOT))
        import numpy as np

        from runtime.data import open_corpus

        c = open_corpus(corpus) if Path(corpus, "meta.json").is_file() else open_corpus(corpus, progress=False)
        if c.meta["tokenizer"].get("kind") != "byte":
            return None
        tokens = np.asarray(c.tokens("val"))
        text = bytes(int(t) for t in tokens if t < 256).decode("utf-8", "replace")
        path = out / "haystack.txt"
        path.write_text(text)
        return path
    except Exception as err:  # noqa: BLE001 - the NIAH prose variants are then skipped
        print(f"note: no haystack from {corpus}: {err}", file=sys.stderr)
        return None


def continual_records(arg: str | None, out: Path, p: dict) -> tuple[Path | None, str]:
    """A labelled .jsonl (text, topic) for class_incremental: given, carried, or made from `wiki`."""
    if arg:
        return Path(arg), "given"
    if CARRIED_RECORDS.is_file():
        return CARRIED_RECORDS, "carried"
    try:
        sys.path.insert(0, str(ROOT))
        from runtime.data import is_cached, get_source, records

        if not all(is_cached(pkg) for pkg in get_source("wiki").all_packages()):
            return None, "the wiki corpus is not cached (nslang data fetch wiki) and no records were carried"
        by_topic: dict[str, list] = {}
        for r in records("wiki", progress=False):
            by_topic.setdefault(r["topic"], []).append({"text": r["text"][:2000], "topic": r["topic"]})
        rows = [r for topic in sorted(by_topic) for r in by_topic[topic][:200]]
        CARRIED_RECORDS.parent.mkdir(parents=True, exist_ok=True)
        CARRIED_RECORDS.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return CARRIED_RECORDS, "made from wiki"
    except Exception as err:  # noqa: BLE001
        return None, f"no records: {err}"
