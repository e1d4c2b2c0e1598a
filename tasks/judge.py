"""Judge: QA pairs → the pairs a judge model rates at least ``teacher.judge.threshold``.

Optional (``teacher.judge.enabled``). One request per chunk rates all its pairs 1–10 on
accuracy, relevance, clarity and usefulness against the chunk's text; the pair's ``score``
is the lowest of the four. Kept pairs carry their score; dropped ones become ``low_score``
rejections carrying the judge's reason. Verdicts are cached per chunk like generation
(chunk text, the pairs, judge model, prompt version, schema), so an unchanged re-run asks
nothing; failures, the failure share and the token budget work as in generate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from faqforge.config import TeacherConfig, stable_hash
from faqforge.records import Chunk, QAPair, Rejection
from faqforge.stage import StageCounts, StageOutput
from faqforge.storage import Workspace, write_json
from faqforge.tasking import IO_RETRIES, Computed, stage
from faqforge.teachers import TeacherError, make_backend
from faqforge.teachers.cache import cache_path, calls_of, read_entry
from faqforge.teachers.fanout import Ask, Traffic, fan_out, retry_if_transient, run_sync
from faqforge.teachers.ledger import Budget, Ledger, run_ledger
from faqforge.teachers.orchestration import (
    Slot,
    prefect_slot,
    publish_ledger_artifact,
    write_ledger,
)
from faqforge.teachers.pair_rater import PairRater, Verdict
from faqforge.teachers.schema import Rating
from tasks.generate import GenerateStats

STAGE = "judge"


def judge_key(chunk: Chunk, pairs: list[tuple[str, str]], judge: PairRater) -> str:
    """What changes the verdicts: the chunk, its pairs, and the judge's model/prompt/schema."""
    parts = [chunk.text_hash, chunk.heading_path, pairs, judge.prompt_version, judge.name]
    settings = judge.cfg.model_dump(include={"temperature", "max_tokens"})
    return stable_hash([*parts, judge.schema_version(len(pairs)), settings], 32)


def read_verdict(path: Path) -> Verdict | None:
    data = read_entry(path, ("ratings", "calls"))
    if data is None:
        return None
    return Verdict([Rating(**r) for r in data["ratings"]], calls_of(data), data.get("raw", ""))


def write_verdict(path: Path, verdict: Verdict, judge: PairRater) -> None:
    write_json(
        path,
        {
            "judge": judge.name,
            "prompt_version": judge.prompt_version,
            "ratings": [asdict(r) for r in verdict.ratings],
            "calls": [asdict(u) for u in verdict.calls],
            "raw": verdict.raw,
        },
    )


class JudgeStats(Traffic):
    """The judge's traffic: judge's stats, as publish reads them."""

    judge: str = ""


@dataclass
class JudgeResult:
    kept: list[QAPair]
    rejections: list[Rejection]
    n_pairs: int
    ledger: Ledger
    stats: JudgeStats = field(default_factory=JudgeStats)

    def counts(self) -> StageCounts:
        return StageCounts.of(self.n_pairs, len(self.kept), self.rejections)


def verdicts(pairs: list[QAPair], ratings: list[Rating], threshold: float) -> tuple[list, list]:
    """Kept pairs (with ``score``) and ``low_score`` rejections (with the judge's reason)."""
    kept, dropped = [], []
    for pair, rating in zip(pairs, ratings, strict=True):
        scored = replace(pair, score=rating.score)
        if rating.score >= threshold:
            kept.append(scored)
            continue
        marks = ", ".join(f"{k} {v}" for k, v in asdict(rating).items() if k != "reason")
        detail = f"score {rating.score:g} < {threshold:g} ({marks}): {rating.reason}"
        dropped.append(Rejection(pair.id, STAGE, "low_score", detail, scored.to_dict()))
    return kept, dropped


async def judge_pairs(
    pairs: Sequence[QAPair],
    chunks: dict[str, Chunk],
    judge: PairRater,
    cache_dir: Path,
    cfg: TeacherConfig,
    budget: Budget | None = None,
    slot: Slot | None = None,
    force: bool = False,
) -> JudgeResult:
    """Rate every chunk's pairs, ``cfg.concurrency`` chunks at a time, caching each verdict.

    ``force`` rates every chunk again, overwriting its cached verdict.
    """
    by_chunk: dict[str, list[QAPair]] = {}
    for pair in pairs:
        if pair.chunk_id not in chunks:
            raise ValueError(
                f"judge: pair {pair.id} names chunk {pair.chunk_id}, which is not among the "
                "chunks given; pass the chunk stage output that made the pairs"
            )
        by_chunk.setdefault(pair.chunk_id, []).append(pair)
    groups = [(chunks[cid], group) for cid, group in by_chunk.items()]

    def ask(chunk: Chunk, group: list[QAPair]) -> Ask[Verdict]:
        qa = [(p.question, p.answer) for p in group]
        path = cache_path(cache_dir, judge_key(chunk, qa, judge))
        return Ask(chunk, path, lambda: judge.rate(chunk, qa))

    stats = JudgeStats()
    fanned = await fan_out(
        STAGE,
        [ask(c, g) for c, g in groups],
        cfg,
        judge,
        read_verdict,
        lambda path, verdict: write_verdict(path, verdict, judge),
        stats,
        budget,
        slot,
        force,
    )
    result = JudgeResult([], [], len(pairs), fanned.ledger, stats)
    for (_, group), outcome in zip(groups, fanned.outcomes, strict=True):
        if isinstance(outcome, TeacherError):
            result.rejections += [
                Rejection(
                    p.id, STAGE, outcome.reason, outcome.detail, {**p.to_dict(), "raw": outcome.raw}
                )
                for p in group
            ]
            continue
        kept, dropped = verdicts(group, outcome.ratings, cfg.judge.threshold)
        result.kept += kept
        result.rejections += dropped
    return result


def _key_params(params: dict[str, Any]) -> dict[str, Any]:
    """What the verdicts were asked about (the output's hash is the rest of the key)."""
    return {"pairs": params["pairs"], "cfg": params["cfg"].judge, "workspace": params["workspace"]}


def _publish_ledger(out: StageOutput, params: dict[str, Any]) -> None:
    generated = params["pairs"].stats_as(GenerateStats).ledger
    ledger = out.stats_as(JudgeStats).ledger
    ledgers = {"generate": generated, STAGE: ledger} if generated else {STAGE: ledger}
    cfg: TeacherConfig = params["cfg"]
    publish_ledger_artifact(
        run_ledger(ledgers, cfg.token_budget), Workspace(Path(params["workspace"]))
    )


@stage(STAGE, key_on="output", key_params=_key_params, after=_publish_ledger,
       retry_condition_fn=retry_if_transient, **IO_RETRIES)  # fmt: skip
def judge(
    pairs: StageOutput,
    chunks: StageOutput,
    cfg: TeacherConfig,
    workspace: str,
    force_regenerate: bool = False,
) -> Computed:
    """Keep the pairs the judge rates ≥ threshold. The token budget is what generate left.

    ``force_regenerate`` asks the judge again for every chunk, replacing cached verdicts.
    """
    ws = Workspace(Path(workspace))
    items = pairs.read("pairs", QAPair)
    by_id = {c.chunk_id: c for c in chunks.read("chunks", Chunk)}
    judge_ = PairRater(cfg.judge, make_backend(cfg, judge=True))
    generated = pairs.stats_as(GenerateStats).ledger
    spent = generated.get("prompt_tokens", 0) + generated.get("completion_tokens", 0)
    budget = Budget(cfg.token_budget, spent=spent)
    coro = judge_pairs(
        items,
        by_id,
        judge_,
        ws.judge_cache,
        cfg,
        budget,
        prefect_slot(cfg),
        force=force_regenerate,
    )
    result = run_sync(coro)
    rows = result.ledger.rows
    ledger = {**result.ledger.summary(), "file": write_ledger(ws, result.ledger) if rows else None}
    stats = result.stats.model_copy(
        update={"judge": judge_.name, "prompt_version": judge_.prompt_version, "ledger": ledger}
    )
    return {"pairs": result.kept, "rejections": result.rejections}, result.counts(), stats
