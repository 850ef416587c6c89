"""Answering a question from a collection: hybrid ranking (``hybrid``), the relevance bars and
ranker weights (``relevance``), the sources of a grounded turn (``grounding``) and the check of
a reply's citations (``citations``).

How a Korean question is scored: its language is decided by script ratio (Hangul share,
``chatapp.text.language``). Its terms are Kiwi morphemes (``chatapp.text.terms``), ranked by
BM25 over the collection's chunks. It is embedded in the space that reads Korean (USE
multilingual in an ``auto`` collection); MiniLM's ranking does not count for it (dense weight 0).
The dense and keyword rankings are fused by weighted reciprocal rank. Refusal: if no chunk of
the Korean space reaches that space's Korean bar (cosine, ``relevance.DEFAULT_MIN_SCORE``), the
question gets no sources; otherwise each hit must reach its own space's bar, and chunks of a
space that cannot read Korean (found by keywords) carry none.
"""
