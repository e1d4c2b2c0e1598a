"""What a re-run costs: cold refresh vs. unchanged re-run vs. re-run after editing 1% of docs.

    .venv/bin/python bench/refresh_rerun.py [--copies 10] [--workspace DIR]

Builds a corpus of ``copies`` variants of the bundled sample corpus (each names its own
product, so chunks that mention it differ; chunks that do not are identical across copies and
share one teacher answer even in the cold run, as repeated boilerplate does in real corpora),
then runs the real refresh flow three times on the embedded Prefect API and prints teacher
requests, cache hits and wall time of each run, with ratios against the cold run in the same
process as the baseline. Goal: with 1% of the documents edited, at most 20% of the cold wall
time (dedup reads the unchanged texts' vectors back from ``cache/vectors/``).
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from faqforge.runtime import prepare_environment  # noqa: E402


def build_corpus(dest: Path, copies: int) -> list[Path]:
    sample = ROOT / "faqforge" / "sample_corpus"
    files = []
    for i in range(copies):
        for src in sorted(sample.glob("*.md")):
            out = dest / f"site{i:03d}" / src.name
            out.parent.mkdir(parents=True, exist_ok=True)
            # A per-copy product name makes every chunk's text (and cache key) distinct.
            out.write_text(src.read_text().replace("faqforge", f"faqforge-{i:03d}"))
            files.append(out)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--workspace", type=Path, default=None)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="faqforge-bench-"))
    ws = args.workspace or tmp / "ws"
    prepare_environment()
    from flows.refresh import refresh

    files = build_corpus(tmp / "corpus", args.copies)

    def timed() -> tuple[dict, float]:
        start = time.perf_counter()
        summary = refresh(
            config=str(ROOT / "configs" / "default.yaml"),
            overrides=[f"validate.suite={ROOT / 'expectations' / 'qa_dataset.json'}"],
            source=str(tmp / "corpus"),
            workspace=str(ws),
        )
        return summary, time.perf_counter() - start

    cold, t_cold = timed()
    same, t_same = timed()
    n_edit = max(1, math.ceil(len(files) / 100))
    for path in files[:n_edit]:
        path.write_text(
            path.read_text() + "\n\n## Release notes\n\nThis section was added "
            "after the first refresh, so only its chunk is new.\n"
        )
    edited, t_edit = timed()

    def row(name: str, summary: dict, seconds: float) -> str:
        req = summary["teacher"]["requests"]
        return (
            f"{name:<26} {req:>9} {req / cold['teacher']['requests']:>8.1%} "
            f"{seconds:>9.1f} {seconds / t_cold:>8.1%}  {summary['version']}"
        )

    print(f"\ncorpus: {len(files)} documents; edited {n_edit} ({n_edit / len(files):.1%})")
    print(f"{'run':<26} {'requests':>9} {'vs cold':>8} {'wall s':>9} {'vs cold':>8}  version")
    print(row("cold", cold, t_cold))
    print(row("unchanged re-run", same, t_same))
    print(row(f"{n_edit} document(s) edited", edited, t_edit))
    if args.workspace is None:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
