"""Text analysis shared by retrieval and prompting: a text's language by script ratio
(``language``), Korean morphemes by Kiwi (``korean``), and keyword terms for BM25 (``terms``)."""
