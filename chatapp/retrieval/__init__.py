"""Retrieval over the user's own files, in three stages, each a package:

- ``ingest``: find a folder's files, read and parse them, cut them into chunks, embed and write
  them into a collection (``ingest.indexing.index_paths``).
- ``store``: a collection on disk: chunk vectors (chromadb), the manifest of files and chunks
  (SQLite), the keyword (BM25) index, and the lock that lets one writer in at a time.
- ``search``: a question's hybrid ranking, the refusal when nothing relevant is found, the
  sources given to a grounded reply, and the check of that reply's citations.

Language detection and Korean analysis (``chatapp.text``) and the embedders
(``chatapp.embedding``) are shared leaves below it; prompting uses them without retrieval.
"""
