"""The stages, in DAG order, each a module with one ``@task``; the helpers each uses in brackets.

ingest → chunk (prepare: the student's tokenizer) → generate → judge (optional) → curate
(links, pii, language, coverage) → dedup (ambiguity, minhash, embeddings, vector_cache) →
split (split_registry: the frozen eval split) → decontaminate (references, minhash) →
validate (gx_suites, quality, explain) → publish (dataset_card, diff) → finetune
(training/) → evaluate (evaluate/: answers, grading, metrics, probes, report; promote: the
champion gate). ``text`` is the word and n-gram helpers every data stage shares.
"""
