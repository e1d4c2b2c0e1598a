"""The ``vllm`` teacher kind (in-process ``vllm.LLM``), run by .venv-vllm's Python.

    PYTHONPATH=. .venv-vllm/bin/python testsupport/vllm_inprocess_worker.py MODEL_DIR N OUT.json

Asks about ``N`` sample chunks at once and writes JSON to OUT.json (vLLM logs to stdout):
the pairs per chunk, the usage per chunk, and the batch sizes the backend sent the engine.
A separate process because vLLM lives only in .venv-vllm, and the engine needs the
``__main__`` guard.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from faqforge.config import TeacherConfig
from faqforge.teachers import make_teacher
from testsupport.resume_worker import sample_chunks


async def ask_all(model: str, n: int) -> dict:
    cfg = TeacherConfig(
        kind="vllm", model=model, concurrency=n, min_facts=1, max_facts=1, max_answer_words=5,
        phrasings=2, max_tokens=1536,  # a random model pads the JSON with whitespace
        vllm_engine_args={"dtype": "float32", "max_model_len": 4096,
                          "hf_overrides": {"max_position_embeddings": 4096}},
    )  # fmt: skip
    teacher = make_teacher(cfg)
    replies = await asyncio.gather(*(teacher.generate(c, 1) for c in sample_chunks(n)))
    return {
        "facts": [[len(f.questions) for f in r.facts] for r in replies],
        "usage": [[r.usage.prompt_tokens, r.usage.completion_tokens] for r in replies],
        "batches": teacher.backend.batch_sizes,
    }


if __name__ == "__main__":
    result = asyncio.run(ask_all(sys.argv[1], int(sys.argv[2])))
    Path(sys.argv[3]).write_text(json.dumps(result))
