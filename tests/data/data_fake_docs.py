"""The fake corpus of the data-layer tests (documents with non-ASCII text and a duplicate)."""

FAKE_DOCS = [f"Document {i}: le café de Zoë — naïve façade, 日本語 {i}.\n" + "Some words here. " * (i + 1)
             for i in range(10)]
FAKE_DOCS.append(FAKE_DOCS[3])
