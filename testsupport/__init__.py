"""What tests, benches and demos share, outside the product package and outside tests/:

- servers and workers they start: ``openai_server`` (an OpenAI-compatible teacher),
  ``fault_proxy`` (faults between client and server), ``loopback``, ``prefect_server``,
  ``local_vllm`` (a real vLLM server), ``refresh_proc`` and ``resume_worker`` (flows and
  teacher runs as subprocesses to kill), ``vllm_inprocess_worker``, ``vllm_lora_check``;
- data builders for tests: ``planted``, ``teaching``, ``judging``, ``corpus_faults``,
  ``chain``, ``prefect_reads``. Fixtures live in ``tests/conftest.py``, so no test module
  imports another and each test gets its own state from a fixture.
"""
