"""Answering a question from a collection: hybrid ranking (``hybrid``, merged by ``fusion``),
whether the documents answer it at all (``evidence``, with the bars and ranker weights in
``relevance``), the sources of a grounded turn (``grounding``) and the check of a reply's
citations (``citations``).

How a Korean question is scored: its language is decided by script ratio (Hangul share,
``chatapp.text.language``). Its terms are Kiwi morphemes (``chatapp.text.terms``), ranked by
BM25 over the collection's chunks. It is embedded in the space that reads Korean (USE
multilingual in an ``auto`` collection); MiniLM's ranking does not count for it (dense weight 0).
The dense and keyword rankings are merged by their normalised scores (``fusion.fuse_scores``;
English questions by reciprocal rank). Refusal (``evidence.decide``, bars in
``relevance.CALIBRATION``): the question is answered when its best cosine in the Korean space is
high, or one chunk holds most of its content morphemes (weighted by rarity, so a short question
whose words stand in a note is answered in a six-note folder), or both are moderately high; it
is refused when neither is, or when it names a Latin-script thing (a library, a tool) that no
chunk holds. The answer says which evidence decided. Each hit must then reach its space's bar
or hold enough of the question's terms; chunks of a space that cannot read Korean (found by
keywords) carry no bar.
"""
