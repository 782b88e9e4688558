"""Stage 06 (notebook ``06_ensemble``): the weighted ensemble and its evaluation.

- ``scores`` — members aligned, the published weighted sum, weights fitted on val, the submission file, the CLI;
- ``run`` — the whole step: every variant (published / equal / fitted weights, with and without re-rank), metrics;
- ``rerank`` — the attribute re-rank (colour, type and manoeuvre classifiers on the embeddings);
- ``report`` — ``summary.{json,md}`` and its figures;
- ``search`` — free-text search over a run's embeddings (the notebook's search box);
- ``release`` — the authors' released embeddings through a restricted unpickler into our format.

``python -m lib.ensemble EMBED_DIR ... --out OUT`` is the command line; ``python -m lib.release`` converts a release.
"""
