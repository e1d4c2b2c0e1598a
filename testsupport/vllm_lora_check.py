"""Run under ``.venv-vllm``'s Python: load each adapter folder through vLLM's own LoRA loader
code, as ``vllm serve --enable-lora`` does for a Llama model (``LRUCacheWorkerLoRAManager.
_load_adapter``: ``PEFTHelper.validate_legal``, then ``LoRAModel.from_local_checkpoint`` with
the model's expected modules). Prints one JSON line per adapter: ``{"dir", "error"}``.

    python vllm_lora_check.py MAX_LORA_RANK ADAPTER_DIR [ADAPTER_DIR ...]
"""

import json
import sys

import vllm
from vllm.config.lora import LoRAConfig
from vllm.lora.lora_model import LoRAModel
from vllm.lora.peft_helper import PEFTHelper
from vllm.model_executor.models.llama import LlamaForCausalLM

# The Llama layers vLLM puts LoRA on (its fused linear layers), unpacked as the worker does.
SUPPORTED = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
expected = set()
for module in SUPPORTED:
    expected.update(LlamaForCausalLM.packed_modules_mapping.get(module, [module]))

rank = int(sys.argv[1])
for adapter in sys.argv[2:]:
    error = None
    try:
        helper = PEFTHelper.from_local_dir(adapter, max_position_embeddings=None)
        helper.validate_legal(LoRAConfig(max_lora_rank=rank))
        LoRAModel.from_local_checkpoint(adapter, expected, peft_helper=helper, device="cpu")
    except ValueError as exc:
        error = str(exc)
    print(json.dumps({"dir": adapter, "error": error, "vllm": vllm.__version__}))
