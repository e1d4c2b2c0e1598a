"""Will this run fit? Peak memory and tokens per step, estimated before any weight is loaded.

The model's shape comes from its config alone (instantiated on PyTorch's ``meta`` device, so an
8B model costs no memory); ``estimate_memory`` is plain arithmetic over it:

    weights      4-bit NF4 decoder linears (0.5 B/param + ~3% quantisation constants), the
                 rest (embeddings, norms, lm_head) in bf16 on CUDA / fp32 on CPU
    optimiser    16 B per trainable parameter (fp32 weight + grad + two Adam moments);
                 12 B for full fine-tuning, whose weights are already counted
    activations  per layer and token ~(10·hidden + 4·intermediate) values; with gradient
                 checkpointing only each layer's input plus one layer recomputed
    logits       tokens × vocab × (model dtype + fp32 upcast + fp32 grad): transformers computes
                 the loss on full logits, which dominates for 128k-token vocabularies
    overhead     CUDA context / the Python process with the training stack imported, its
                 tokenised data and allocator slack (measured ≈ 0.75 GiB on the tiny model)

Anchors: QLoRA 4-bit weights ≈ params/2 GB (+ unquantised embeddings: Llama-3-8B ≈ 5.7 GB);
torchtune reports Llama-3.1-8B QLoRA at 7.4 GiB peak and 2,413 tokens/s on one RTX 4090 with
chunked cross-entropy, so this estimate, which assumes full logits, sits above that figure at
the same sequence length. Tokens/s is only extrapolated for QLoRA on CUDA, from that anchor.
Not modelled: KV cache of sample generations, DeepSpeed/FSDP sharding, allocator fragmentation
beyond a flat 10%.
"""

from __future__ import annotations

from dataclasses import dataclass

from faqforge.config import FinetuneConfig

GIB = 1024**3
NF4_BYTES = 0.5 * 1.03
ANCHOR_PARAMS, ANCHOR_TOKENS_PER_S = 8.03e9, 2413  # torchtune, Llama-3.1-8B QLoRA, RTX 4090
# CUDA context; on CPU the imports alone (torch, transformers, trl, peft, datasets) ≈ 0.52 GiB RSS.
OVERHEAD = {"cuda": 0.75 * GIB, "cpu": 0.75 * GIB}
TARGET_PRESETS = {"attention-qk": ["q_proj", "k_proj"]}


def target_modules(cfg: FinetuneConfig) -> str | list[str]:
    """PEFT's ``target_modules`` for the config's preset or list (``all-linear`` passes through)."""
    if isinstance(cfg.target_modules, list):
        return list(cfg.target_modules)
    return TARGET_PRESETS.get(cfg.target_modules, cfg.target_modules)


@dataclass(frozen=True)
class ModelShape:
    total: int  # every parameter
    quantizable: int  # decoder nn.Linear weights: what bitsandbytes turns into 4-bit
    trainable: int  # LoRA A/B + modules_to_save copies (or everything, for full fine-tuning)
    hidden: int
    intermediate: int
    layers: int
    heads: int
    vocab: int


def model_shape(base_model: str, cfg: FinetuneConfig, full: bool = False) -> ModelShape:
    """The parameter counts of ``base_model`` with this config's adapter, from its config only."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(base_model, trust_remote_code=False)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    head = model.get_output_embeddings()
    targets = target_modules(cfg)
    total = sum(p.numel() for p in model.parameters())
    quantizable = trainable = 0
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if isinstance(module, torch.nn.Linear) and module is not head:
            quantizable += module.weight.numel()
            if targets == "all-linear" or leaf in targets:
                trainable += cfg.lora_r * (module.in_features + module.out_features)
        if leaf in cfg.modules_to_save:
            trainable += sum(p.numel() for p in module.parameters())
    text = config.get_text_config()
    return ModelShape(
        total=total,
        quantizable=quantizable,
        trainable=total if full else trainable,
        hidden=text.hidden_size,
        intermediate=getattr(text, "intermediate_size", 4 * text.hidden_size),
        layers=text.num_hidden_layers,
        heads=text.num_attention_heads,
        vocab=text.vocab_size,
    )


@dataclass(frozen=True)
class MemoryEstimate:
    device: str
    weights: float
    optimizer: float
    activations: float
    logits: float
    overhead: float
    tokens_per_step: int
    tokens_per_s: float | None  # extrapolated from the anchor; None where no anchor applies

    @property
    def peak(self) -> float:
        parts = self.weights + self.optimizer + self.activations + self.logits
        return 1.1 * parts + self.overhead

    def render(self, available: float | None = None) -> str:
        parts = ", ".join(
            f"{name} {getattr(self, name) / GIB:.2f}"
            for name in ("weights", "optimizer", "activations", "logits", "overhead")
        )
        line = f"estimated peak {self.peak / GIB:.2f} GiB on {self.device} ({parts} GiB)"
        if available is not None:
            line += f"; available {available / GIB:.2f} GiB"
        line += f"; {self.tokens_per_step:,} tokens/step (padded)"
        if self.tokens_per_s is not None:
            line += f"; ~{self.tokens_per_s:,.0f} tokens/s on an RTX 4090-class GPU"
        return line


def estimate_memory(
    shape: ModelShape,
    cfg: FinetuneConfig,
    *,
    quantized: bool,
    cuda: bool,
    checkpointing: bool,
    full: bool = False,
    devices: int = 1,
) -> MemoryEstimate:
    """Peak memory of one device for this shape and config (see the module docstring)."""
    dtype = 2 if cuda else 4  # bf16 on CUDA, fp32 on CPU
    if quantized:
        weights = shape.quantizable * NF4_BYTES + (shape.total - shape.quantizable) * dtype
    else:
        weights = shape.total * dtype
    optimizer = shape.trainable * (12 if full else 16)
    tokens = cfg.batch_size * cfg.max_length
    per_layer = tokens * (10 * shape.hidden + 4 * shape.intermediate) * dtype
    if cfg.attn_implementation == "eager":  # materialised attention scores and probabilities
        per_layer += 2 * cfg.batch_size * shape.heads * cfg.max_length**2 * dtype
    if checkpointing:
        activations = shape.layers * tokens * shape.hidden * dtype + per_layer
    else:
        activations = shape.layers * per_layer
    logits = tokens * shape.vocab * (dtype + 8)
    tokens_per_s = None
    if cuda and quantized:
        tokens_per_s = ANCHOR_TOKENS_PER_S * ANCHOR_PARAMS / shape.total * devices
    return MemoryEstimate(
        device="cuda" if cuda else "cpu",
        weights=weights,
        optimizer=optimizer,
        activations=activations,
        logits=logits,
        overhead=OVERHEAD["cuda" if cuda else "cpu"],
        tokens_per_step=tokens * cfg.gradient_accumulation_steps * devices,
        tokens_per_s=tokens_per_s,
    )


def available_memory(cuda: bool) -> int:
    """Free memory of the training device: CUDA device 0, else RAM available to new processes."""
    if cuda:
        import torch

        free, _total = torch.cuda.mem_get_info(0)
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


class DoesNotFit(MemoryError):
    """The estimated peak exceeds the device's free memory."""


def check_fits(estimate: MemoryEstimate, available: float, cfg: FinetuneConfig) -> None:
    """Raise ``DoesNotFit`` naming the estimate and what to turn down."""
    if estimate.peak <= available:
        return
    hints = ["finetune.batch_size (raise gradient_accumulation_steps to keep the batch)"]
    hints.append("finetune.max_length")
    if cfg.quantization != "4bit":
        hints.append("finetune.quantization: 4bit")
    if not cfg.gradient_checkpointing:
        hints.append("finetune.gradient_checkpointing: true")
    raise DoesNotFit(
        f"this run will not fit: {estimate.render(available)}. Lower "
        + ", ".join(hints)
        + "; or set finetune.check_memory: false to try anyway."
    )


def preflight(
    base_model: str,
    cfg: FinetuneConfig,
    *,
    quantized: bool,
    cuda: bool,
    checkpointing: bool,
    full: bool = False,
    devices: int = 1,
) -> MemoryEstimate:
    """Estimate, print and check (unless ``check_memory`` is off) before any weight is loaded.

    Printed, not logged: it is shown to whoever started the run, and a Prefect flow with
    ``log_prints`` records it on the run.
    """
    estimate = estimate_memory(
        model_shape(base_model, cfg, full),
        cfg,
        quantized=quantized,
        cuda=cuda,
        checkpointing=checkpointing,
        full=full,
        devices=devices,
    )
    available = available_memory(cuda)
    print(estimate.render(available))
    if cfg.check_memory:
        check_fits(estimate, available, cfg)
    return estimate
