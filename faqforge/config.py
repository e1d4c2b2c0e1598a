"""Typed pipeline configuration: one pydantic model per stage, one YAML file per pipeline.

Precedence, lowest first: field defaults (they serve the embedded run) < the YAML file <
environment variables ``FAQFORGE__SECTION__FIELD=value`` < ``--set section.field=value``.
Unknown keys are errors, and every invalid field is reported at once, before any work.
Secrets never live here: ``teacher.api_key_env`` names the variable that holds the key.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ENV_PREFIX = "FAQFORGE__"
DEFAULT_CONFIG = Path("configs/default.yaml")
# Shipped in the package (configs/default.yaml in a checkout links to it), so the default
# resolves outside the checkout too; so does the bundled sample corpus.
PACKAGED_CONFIG = Path(__file__).parent / "configs" / "default.yaml"
SAMPLE_CORPUS = Path(__file__).parent / "sample_corpus"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class IngestConfig(Section):
    extensions: list[str] = [".md", ".txt", ".html", ".htm", ".pdf"]
    # Larger files are rejected rather than read: one stray dump must not stall the run.
    max_file_bytes: int = Field(20_000_000, gt=0)

    @model_validator(mode="after")
    def _extensions_are_suffixes(self) -> IngestConfig:
        if bad := [e for e in self.extensions if not e.startswith(".") or len(e) < 2]:
            fixed = ", ".join(repr("." + e.lstrip(".")) for e in bad)
            raise ValueError(f"extensions {bad} would match no file: write them as {fixed}")
        return self


class ChunkConfig(Section):
    max_tokens: int = Field(256, ge=32, description="chunk size in student tokens")
    overlap_tokens: int = Field(32, ge=0)
    # None: the student's own tokenizer, so chunk sizes are what the student will see.
    tokenizer: str | None = None
    # Ceiling on chunks per run: a runaway corpus ends the stage with a report (the documents
    # past it are rejected as `chunk_limit`) instead of a teacher bill or an OOM.
    max_chunks: int | None = Field(100_000, ge=1)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkConfig:
        if self.overlap_tokens >= self.max_tokens:
            raise ValueError("overlap_tokens must be smaller than max_tokens")
        return self


class JudgeConfig(Section):
    """The optional judge pass: an LLM rates each pair against its source chunk."""

    enabled: bool = False
    # None: the teacher's own endpoint, model and key variable (kind openai or vllm).
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    # A pair is kept when its score (the lowest of accuracy, relevance, clarity, usefulness)
    # reaches this: one weak criterion is enough to make a training pair harmful.
    threshold: float = Field(7.0, ge=1, le=10)
    temperature: float = Field(0.0, ge=0)
    max_tokens: int = Field(512, ge=16)


class TeacherConfig(Section):
    # openai: any OpenAI-compatible server (`vllm serve`); vllm: an in-process vllm.LLM engine
    # on this machine's GPU; extractive: offline, no model (the embedded default).
    kind: Literal["extractive", "openai", "vllm"] = "extractive"
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "meta-llama/Meta-Llama-3-70B-Instruct"
    api_key_env: str = "FAQFORGE_TEACHER_API_KEY"
    concurrency: int = Field(8, ge=1)
    timeout_s: float = Field(120.0, gt=0)
    # Transient failures (timeouts, connection errors, 429, 5xx) only; other 4xx fail at once.
    max_retries: int = Field(3, ge=0)
    # Backoff before retry n is backoff_s * 2**n (capped), half of it random jitter.
    backoff_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    # Names of Prefect global limits shared by every flow using this endpoint: a concurrency
    # limit held during each request, and a rate limit (slot decay) taken before each one.
    # Create them first (`prefect gcl create NAME --limit N [--slot-decay-per-second R]`).
    concurrency_limit: str | None = None
    rate_limit: str | None = None
    # Prompt + completion tokens this run may spend (generate and judge together); once
    # reached no new request is sent and what was left is reported. None: no budget.
    token_budget: int | None = Field(None, ge=1)
    # Prices for the ledger's cost column (currency per million tokens); 0 for self-hosted.
    cost_per_mtok_prompt: float = Field(0.0, ge=0)
    cost_per_mtok_completion: float = Field(0.0, ge=0)
    # kind=vllm only: keyword arguments for vllm.LLM (max_model_len, gpu_memory_utilization...).
    vllm_engine_args: dict[str, Any] = {}
    temperature: float = Field(0.2, ge=0)
    max_tokens: int = Field(1024, ge=16)
    # Facts per chunk scale with its length; each fact is asked `phrasings` ways (at least
    # two): the seed recipe's one pair per concept taught answers to one wording only.
    facts_per_100_tokens: float = Field(1.5, gt=0)
    min_facts: int = Field(1, ge=1)
    max_facts: int = Field(6, ge=1)
    phrasings: int = Field(3, ge=2, le=5)
    # The longest answer in the dataset: the teacher is asked for it, curate enforces it.
    max_answer_words: int = Field(60, ge=5)
    # A run fails only when more than this share of chunks could not be answered.
    max_failure_share: float = Field(0.2, ge=0, le=1)
    judge: JudgeConfig = JudgeConfig()

    @model_validator(mode="after")
    def _judge_needs_a_model(self) -> TeacherConfig:
        if self.judge.enabled and self.kind == "extractive" and self.judge.base_url is None:
            raise ValueError(
                "teacher.judge.enabled needs a model: set teacher.judge.base_url (and "
                "teacher.judge.model), or use teacher.kind openai or vllm"
            )
        return self

    def generation_key(self) -> dict[str, Any]:
        """The fields that change what the teacher writes (not how fast it is asked)."""
        return self.model_dump(
            include={
                "kind",
                "model",
                "temperature",
                "max_tokens",
                "facts_per_100_tokens",
                "min_facts",
                "max_facts",
                "phrasings",
                "max_answer_words",
            }
        )

    def content_key(self) -> dict[str, Any]:
        """What shapes the dataset: generation plus, when enabled, the judge's verdicts."""
        judge = self.judge
        verdicts = judge.model_dump(exclude={"base_url", "api_key_env"}) if judge.enabled else None
        return {**self.generation_key(), "judge": verdicts}


class CurateConfig(Section):
    # The word limit is teacher.max_answer_words: the teacher is asked for it, curate
    # rejects what still gets through. In characters too: one 1 MB "word" (a runaway
    # reply, a dump) passes a word count.
    max_answer_chars: int = Field(1200, ge=1)
    max_question_chars: int = Field(300, ge=1)
    # Shorter answers ("Yes.", "See below.") tell a user nothing to act on.
    min_answer_words: int = Field(3, ge=1)
    min_question_words: int = Field(3, ge=1)
    # An answer whose content words are mostly the question's own teaches nothing.
    max_repeat_share: float = Field(0.8, gt=0, le=1)
    # Expected languages (ISO 639-1 codes of py3langid); [] turns the check off. Only a
    # confident verdict drops a pair: short technical text often gets a weak guess.
    languages: list[str] = ["en"]
    min_language_confidence: float = Field(0.8, ge=0, le=1)
    # reject: drop the pair; flag: keep it, naming what was found in its `flags`; off: skip.
    pii: Literal["reject", "flag", "off"] = "reject"
    boilerplate: Literal["reject", "flag", "off"] = "reject"


class DedupConfig(Section):
    # Chosen on planted near-duplicates (bench/dedup_quality_speed.py): 2-word shingles keep
    # a changed word in short QA text from costing too much Jaccard. 0.6 catches 96% of
    # 10%-edited copies; lower merges more of the teacher's own pairs whose answers overlap
    # (2 of 227 at 0.6, 12 at 0.5), costing question variety per concept.
    shingle_words: int = Field(2, ge=1)
    num_perm: int = Field(128, ge=16)
    # LSH layout: bands × (num_perm / bands) rows. More bands: more candidates, more recall;
    # each candidate is verified against the thresholds, so precision does not suffer.
    bands: int = Field(32, ge=1)
    threshold: float = Field(0.6, gt=0, le=1)  # estimated Jaccard of question + answer
    question_threshold: float = Field(0.8, gt=0, le=1)  # of the question alone (short text)
    # Paraphrased questions with agreeing answers, via the bundled all-MiniLM-L6-v2.
    semantic: bool = True
    semantic_threshold: float = Field(0.9, gt=0, le=1)  # question cosine
    semantic_answer_threshold: float = Field(0.85, gt=0, le=1)  # answer cosine
    # Where the LSH band buckets live: this process, or a Redis server (redis_url) that
    # holds the index outside the worker's memory. Same result either way, so neither field
    # is part of the dataset's key. The password comes from FAQFORGE_REDIS_PASSWORD.
    lsh_storage: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"

    @model_validator(mode="after")
    def _bands_divide_perms(self) -> DedupConfig:
        if self.num_perm % self.bands:
            raise ValueError("bands must divide num_perm (each band takes num_perm/bands rows)")
        return self

    @model_validator(mode="after")
    def _url_without_credentials(self) -> DedupConfig:
        if "@" in self.redis_url:  # config is dumped into manifests: no secrets in it
            raise ValueError("redis_url must not hold credentials: set FAQFORGE_REDIS_PASSWORD")
        return self

    def content_key(self) -> dict[str, Any]:
        """What decides which pairs are kept: every knob but where the index lives."""
        return self.model_dump(mode="json", exclude={"lsh_storage", "redis_url"})


class SplitConfig(Section):
    # The unseen-documents probe: the share of documents held out whole. Applies to documents
    # new to the frozen eval split, and to all of them under --new-eval.
    eval_fraction: float = Field(0.2, gt=0, lt=1)
    # The knowledge probe: the share of facts in training documents (those asked two or more
    # ways) that have one phrasing held out of training and asked in evaluation.
    knowledge_fraction: float = Field(0.3, gt=0, lt=1)
    salt: str = "faqforge-split-v1"


class DecontaminateConfig(Section):
    ngram_words: int = Field(13, ge=3, description="GPT-3 style long n-gram overlap")
    # Paraphrased leaks share no long n-gram: MinHash over word shingles of question + answer.
    shingle_words: int = Field(3, ge=1)
    num_perm: int = Field(128, ge=16)
    minhash_threshold: float = Field(0.5, gt=0, le=1)
    # Against the knowledge probe, only the wording is held out: a training question whose
    # word-pair (2-shingle) Jaccard with a probe question reaches this is a near-identical
    # question. Phrasings written in other forms stay below it ("What does X do?" / "What is
    # X responsible for?" share about 0.3).
    question_threshold: float = Field(0.6, gt=0, le=1)
    # External benchmarks (JSONL, one question/answer object a line) kept out of training too.
    benchmarks: list[Path] = []


class ValidateConfig(Section):
    suite: Path = Path("expectations/qa_dataset.json")
    # Dataset-level checks (sizes, change against the previous version), bounds from below.
    summary_suite: Path = Path("expectations/qa_dataset_summary.json")
    min_train_rows: int = Field(1, ge=1)
    min_eval_rows: int = Field(1, ge=1)
    # Knowledge-probe items: without them evaluation cannot say whether the model learned.
    min_knowledge_rows: int = Field(1, ge=0)
    # Questions whose subject is a section name or page title ("What is NAME in git-clone(1)
    # Manual Page?"): a dataset made of them answers nothing a user asks.
    max_generic_question_share: float = Field(0.05, ge=0, le=1)
    # Share of the previous version's pairs a refresh may remove (a collapse, not an edit) or
    # add; raise for a deliberate rebuild (new prompt or teacher). None: unbounded.
    max_removed_share: float | None = Field(0.5, ge=0)
    max_added_share: float | None = Field(3.0, ge=0)


class FinetuneConfig(Section):
    """Every knob of the SFT run; defaults serve the tiny CPU student (see configs/*.yaml)."""

    @property
    def base_identity(self) -> str:
        """The base model as adapters record it: portable, never this machine's folder."""
        return self.base_model_name or self.base_model

    # "builtin:tiny-llama" builds a tiny Llama locally (no hub access); else a path or hub name.
    base_model: str = "builtin:tiny-llama"
    # What the adapter names as its base when `base_model` is a local folder: its hub name,
    # so the card and adapter_config.json carry no path of the training machine.
    base_model_name: str | None = None
    # The adapter card's `license`; None: a packaged model's own (SmolLM2: apache-2.0), else
    # "other". Set it for hub models (Llama 3: llama3).
    license: str | None = None
    # "model": the tokenizer's own template; "llama3" / "chatml": the pinned Llama-3 / ChatML
    # (SmolLM2) template with {% generation %} markers (assistant-only loss needs them; the
    # models' own templates lack them); or a path to a .jinja file.
    chat_template: str = "model"
    # auto: 4-bit QLoRA (NF4, double quant, bf16 compute) when CUDA is present, else plain LoRA.
    quantization: Literal["auto", "none", "4bit"] = "auto"
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    # "all-linear" (every projection, not lm_head) or "attention-qk" (q_proj/k_proj only, the
    # seed recipe's cheaper variant), or an explicit list of module names.
    target_modules: Literal["all-linear", "attention-qk"] | list[str] = "all-linear"
    # A randomly initialised tiny model only learns with a trainable head; drop for real models.
    modules_to_save: list[str] = ["lm_head"]
    # max_steps wins when set; None trains for `epochs` passes over the training split.
    max_steps: int | None = Field(200, ge=1)
    epochs: float = Field(1.0, gt=0)
    learning_rate: float = Field(5e-3, gt=0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_length: int = Field(384, ge=16)
    # Packing concatenates short QA pairs into full rows (no padding waste), per-sequence
    # attention kept through position ids; most useful when pairs are much shorter than max_length.
    packing: bool = False
    # Batch rows of similar length together (transformers' length-grouped sampler): on the
    # sample corpus random batches padded 55% more tokens than they held, grouped ones 3%.
    group_by_length: bool = True
    seed: int = 0
    system_prompt: str = "You answer questions about the organisation's documentation."
    # Eval loss and sample answers every eval_steps; a checkpoint every save_steps (resume).
    eval_steps: int = Field(50, ge=1)
    sample_questions: int = Field(3, ge=0)
    sample_max_new_tokens: int = Field(48, ge=1)
    save_steps: int = Field(50, ge=1)
    save_total_limit: int = Field(2, ge=1)
    # Also write base + adapter merged into one model (runs/<id>/merged/), for plain serving.
    merge: bool = False
    report_to: list[Literal["tensorboard", "mlflow", "wandb"]] = []
    # None: transformers' default (SDPA where supported); "flash_attention_2" needs flash-attn.
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] | None = None
    # None: on with CUDA (memory), off on CPU (it only costs time there).
    gradient_checkpointing: bool | None = None
    # Refuse to start when the estimated peak memory exceeds what the device has.
    check_memory: bool = True
    # Wall-clock ceiling on training: reaching it saves the adapter trained so far and the run
    # reports `stopped: time_limit`. None: no ceiling.
    max_train_seconds: float | None = Field(None, gt=0)
    # Name of a Prefect global concurrency limit held while training (one slot per GPU), so
    # two deployments never share a GPU. Create it: `prefect gcl create gpu --limit 1`.
    gpu_concurrency_limit: str | None = None


EvalMetric = Literal[
    "exact_match", "token_f1", "key_term_recall", "rouge_l", "embedding_cosine", "judge_score"
]


class EvaluateConfig(Section):
    """Base vs tuned on the eval split; defaults serve the embedded CPU run."""

    # auto: vllm when vllm_base_url is set, or vllm imports and CUDA is present; else
    # transformers generate. An adapter that saves full modules (the tiny student's lm_head)
    # cannot be served as a vLLM LoRA: auto then uses transformers, vllm fails.
    backend: Literal["auto", "transformers", "vllm"] = "auto"
    # A running vLLM OpenAI server with the base model, `--enable-lora --max-lora-rank R` and
    # VLLM_ALLOW_RUNTIME_LORA_UPDATING=True (adapters load by name). None: in-process vllm.LLM.
    vllm_base_url: str | None = None
    vllm_api_key_env: str = "FAQFORGE_EVAL_API_KEY"
    vllm_engine_args: dict[str, Any] = {}
    max_new_tokens: int = Field(64, ge=1)  # an answer hitting it is a `truncation` error
    # transformers batch (16 gave 1.7x the tokens/s of 8 for a 135M model on 2 cores);
    # concurrent requests for a server
    batch_size: int = Field(16, ge=1)
    max_items: int | None = Field(None, ge=1)  # per probe, the first N
    # The headline: knowledge lift = (tuned - base on knowledge) - (tuned - base on unseen
    # documents) of this metric, with a paired bootstrap 95% interval.
    lift_metric: EvalMetric = "token_f1"
    # On unseen documents an answer that is neither empty nor a refusal is confident; with
    # token F1 under this it is confidently wrong.
    correct_f1: float = Field(0.5, gt=0, le=1)
    # Degenerate output (named in the report, the CLI and the model card; never promoted):
    # more empty answers than this share, fewer distinct answers than this share of the
    # non-empty ones, or a median answer shorter than this share of the median reference.
    degenerate_max_empty_share: float = Field(0.2, ge=0, le=1)
    degenerate_min_distinct_share: float = Field(0.5, ge=0, le=1)
    degenerate_min_length_ratio: float = Field(0.25, ge=0)
    # Teacher as judge on the teacher's endpoint (or teacher.judge.base_url/model); skipped,
    # with judge_score null, for the extractive teacher that has no model.
    judge: bool = True
    judge_max_tokens: int = Field(256, ge=16)
    # Failed judge requests (after one retry) beyond this share fail the evaluation.
    judge_max_failure_share: float = Field(0.2, ge=0, le=1)
    # Error analysis: an n-gram repeated this often is a loop; longer than ratio x reference
    # words is verbose.
    repetition_ngram: int = Field(3, ge=2)
    repetition_min_count: int = Field(3, ge=2)
    verbosity_ratio: float = Field(2.0, gt=1)
    bootstrap_resamples: int = Field(1000, ge=100)
    seed: int = 0
    # Promotion to runs/CHAMPION: no degenerate output; the knowledge lift's 95% interval
    # must lie above gate_min_lift; on the knowledge probe tuned - base must exceed each
    # margin (metrics not measured, e.g. judge_score without a judge, are skipped) and the
    # pairwise win rate must exceed the loss rate by gate_min_win_margin; then tuned -
    # champion must exceed champion_margins.
    gate_min_lift: float = 0.0
    gate_margins: dict[EvalMetric, float] = {"rouge_l": 0.0, "token_f1": 0.0, "judge_score": 0.0}
    gate_min_win_margin: float = 0.0
    champion_margins: dict[EvalMetric, float] = {"rouge_l": 0.0, "judge_score": 0.0}
    # General-ability regression check with lm-evaluation-harness (extra `harness`): task name
    # -> local ARC-format JSONL (question, choices {text, label}, answerKey). {}: skipped.
    regression_data: dict[str, Path] = {}
    regression_limit: int | None = Field(None, ge=1)


class RunnerConfig(Section):
    """Where the data stages' tasks run: threads here, or a Dask / Ray cluster."""

    # thread: in this process; dask: prefect-dask (a LocalCluster, or `address`); ray:
    # prefect-ray (extra `ray`).
    kind: Literal["thread", "dask", "ray"] = "thread"
    address: str | None = None  # an existing scheduler (tcp://host:8786, ray://host:10001)
    workers: int = Field(2, ge=1)  # LocalCluster size when no address is given


class StorageConfig(Section):
    """Durable copies beyond the laptop: published datasets, runs and reports are mirrored to
    an fsspec URL (s3://, gs://, az://, file://) after each flow; a missing dataset version or
    run is fetched from there. Credentials come from the fsspec backend's own environment."""

    remote_url: str | None = None
    storage_options: dict[str, Any] = {}


class NotifyConfig(Section):
    """Where a failed flow run is reported: a Prefect webhook block by name, or a URL."""

    webhook_block: str | None = None  # e.g. a saved `custom-webhook` or `slack-webhook` block
    webhook_url: str | None = None  # plain JSON POST; the secret-free way for tests and dev
    # Base of the links in the message; None: PREFECT_UI_URL.
    ui_url: str | None = None


class PublishConfig(Section):
    """What the dataset card of each published version declares."""

    # The card's `license` (a hub licence id: apache-2.0, cc-by-4.0, other, ...): the terms
    # the organisation publishes its dataset under; the documents' own terms still apply.
    license: str = "other"
    pretty_name: str | None = None  # None: "faqforge <name> FAQ"


class PipelineConfig(Section):
    name: str = "default"
    workspace: Path = Path(".faqforge")
    source: Path = SAMPLE_CORPUS
    ingest: IngestConfig = IngestConfig()
    chunk: ChunkConfig = ChunkConfig()
    teacher: TeacherConfig = TeacherConfig()
    curate: CurateConfig = CurateConfig()
    dedup: DedupConfig = DedupConfig()
    split: SplitConfig = SplitConfig()
    decontaminate: DecontaminateConfig = DecontaminateConfig()
    validate_: ValidateConfig = Field(ValidateConfig(), alias="validate")
    finetune: FinetuneConfig = FinetuneConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    runner: RunnerConfig = RunnerConfig()
    storage: StorageConfig = StorageConfig()
    notify: NotifyConfig = NotifyConfig()
    publish: PublishConfig = PublishConfig()
    # A second refresh on the same workspace waits this long for the first, then fails with
    # a message naming the holder. 0: fail at once.
    lock_timeout_s: float = Field(0.0, ge=0)
    # Not a setting: what FAQFORGE__* variables changed (key path → value), filled in by
    # load_config and recorded in the manifests and lineage artifacts, so a deployment run
    # changed from its worker's environment says so.
    env_overrides: dict[str, Any] = {}

    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_assignment=True)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def dataset_hash(self) -> str:
        """Hash of everything that shapes the dataset; training/eval knobs are left out."""
        data = self.dump()
        keyed = {
            k: data[k]
            for k in ("ingest", "chunk", "curate", "dedup", "split", "decontaminate", "validate")
        }
        # The chat files carry the system prompt, and the card its licence.
        keyed["system_prompt"] = self.finetune.system_prompt
        keyed["publish"] = data["publish"]
        keyed["teacher"] = self.teacher.content_key()
        keyed["dedup"] = self.dedup.content_key()
        return stable_hash(keyed)

    def hash(self) -> str:
        return stable_hash(self.dump())


class ConfigError(ValueError):
    """All problems with a configuration, one per line, each with its field path."""


def stable_hash(obj: Any, length: int = 16) -> str:
    """sha256 of canonical JSON: equal content gives an equal hash across runs and machines."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: {key} is not a section")
    node[keys[-1]] = value


class UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that rejects a key given twice: the first would be dropped silently."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def yaml_value(raw: str, where: str) -> Any:
    """A YAML scalar or list from the command line or environment; a ConfigError if not."""
    try:
        return yaml.load(raw, Loader=UniqueKeyLoader) if raw.strip() else ""
    except yaml.YAMLError as exc:
        reason = str(getattr(exc, "problem", None) or exc).strip()
        raise ConfigError(f"{where}: {raw!r} is not a YAML value ({reason}); to pass it "
                          f"as text, quote it in YAML: '{raw}'") from None  # fmt: skip


def parse_override(text: str) -> tuple[str, Any]:
    """``"teacher.concurrency=16"`` → ``("teacher.concurrency", 16)``; values are YAML scalars."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key.path=value")
    key, raw = text.split("=", 1)
    return key.strip(), yaml_value(raw, f"--set {text}")


def env_overrides(environ: dict[str, str] | None = None) -> list[tuple[str, Any]]:
    environ = dict(os.environ if environ is None else environ)
    return [
        (name[len(ENV_PREFIX) :].lower().replace("__", "."), yaml_value(value, name))
        for name, value in sorted(environ.items())
        if name.startswith(ENV_PREFIX)
    ]


def load_config(
    path: Path | str | None = None,
    overrides: list[str] | None = None,
    environ: dict[str, str] | None = None,
    literal: list[tuple[str, Any]] | None = None,
) -> PipelineConfig:
    """Read, override and validate a pipeline config; raise ConfigError listing every problem.

    ``literal`` overrides are applied last and verbatim (paths: ``#`` is not a comment there).
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if path == DEFAULT_CONFIG and not path.is_file():
            path = PACKAGED_CONFIG  # not run from a checkout: the default the package ships
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.load(path.read_text(), Loader=UniqueKeyLoader) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping of sections")
        data = loaded
    given = [parse_override(o) for o in overrides or []]
    from_env = env_overrides(environ)
    for key, value in from_env + given + list(literal or []):
        _set_path(data, key, value)
    later = {k for k, _ in given + list(literal or [])}
    data["env_overrides"] = {k: v for k, v in from_env if k not in later}  # what stays applied
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, path)) from None


def _format_errors(exc: ValidationError, path: Path | None) -> str:
    where = f" in {path}" if path else ""
    lines = [f"{exc.error_count()} invalid config field(s){where}:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "literal_error":
            msg = f"{msg} (got {err['input']!r})"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling against `faqforge config show`)"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def load_run_config(
    config: str | Path | None,
    overrides: list[str] | None = None,
    source: str | Path | None = None,
    workspace: str | Path | None = None,
) -> PipelineConfig:
    """A flow's config: file, overrides, then ``--source``/``--workspace``; paths absolute."""
    literal: list[tuple[str, Any]] = []
    if source is not None:
        literal.append(("source", str(source)))
    if workspace is not None:
        literal.append(("workspace", str(workspace)))
    cfg = load_config(config, overrides, literal=literal)
    cfg.source = cfg.source.expanduser().resolve()
    cfg.workspace = cfg.workspace.expanduser().resolve()
    return cfg
