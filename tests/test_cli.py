"""The CLI contract that does not need a flow run: help, config show, config errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from faqforge.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def test_help_imports_neither_torch_nor_prefect():
    code = (
        "import sys\n"
        "from faqforge.cli import app\n"
        "for args in (['--help'], ['run', '--help'], ['stage', '--help'],\n"
        "             ['stage', 'decontaminate', '--help']):\n"
        "    try:\n        app(args)\n    except SystemExit:\n        pass\n"
        "heavy = sorted(m for m in ('torch', 'prefect', 'transformers') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "refresh" in out.stdout and "finetune" in out.stdout and "evaluate" in out.stdout
    assert "curate" in out.stdout and "--eval" in out.stdout  # the stage commands
    assert "HEAVY []" in out.stdout


def test_config_show_resolves_file_and_overrides(monkeypatch):
    monkeypatch.chdir(ROOT)
    result = runner.invoke(
        app,
        [
            "config",
            "show",
            "--config",
            "configs/default.yaml",
            "--json",
            "--set",
            "teacher.concurrency=3",
            "--set",
            "finetune.lora_r=4",
        ],
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["teacher"]["concurrency"] == 3
    assert shown["finetune"]["lora_r"] == 4
    assert shown["validate"]["suite"] == "expectations/qa_dataset.json"
    assert len(shown["_hash"]["dataset"]) == 16


def test_bad_config_exits_2_listing_every_problem_before_any_work(tmp_path):
    result = runner.invoke(
        app,
        [
            "run",
            "refresh",
            "--config",
            str(ROOT / "configs" / "tiny-llama_lora_cpu.yaml"),
            "--workspace",
            str(tmp_path / "ws"),
            "--set",
            "teacher.kind=gpt",
            "--set",
            "split.eval_fraction=2",
        ],
    )
    assert result.exit_code == 2
    assert "teacher.kind" in result.output and "split.eval_fraction" in result.output
    assert not (tmp_path / "ws").exists()  # nothing ran


def test_many_bad_fields_exit_2_all_listed_without_starting_prefect(tmp_path):
    """Every problem at once, with its path and the allowed values, before Prefect or torch
    is even imported: a subprocess, so nothing imported by other tests hides an import."""
    bad = ["teacher.kind=gpt", "finetune.quantization=8bit", "split.eval_fraction=2",
           "chunk.max_chunks=0", "teacher.concurency=4", "runner.kind=spark"]  # fmt: skip
    args = ["run", "refresh", "--workspace", str(tmp_path / "ws")]
    args += [a for b in bad for a in ("--set", b)]
    code = (
        "import sys\nfrom faqforge.cli import app\n"
        f"try:\n    app({args!r})\nexcept SystemExit as exc:\n    code = exc.code\n"
        "heavy = sorted(m for m in ('torch', 'prefect') if m in sys.modules)\n"
        "print('EXIT', code, 'HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=60, check=True)  # fmt: skip
    assert "EXIT 2 HEAVY []" in out.stdout
    assert "6 invalid config field(s)" in out.stderr
    for line in [
        "teacher.kind: Input should be 'extractive', 'openai' or 'vllm' (got 'gpt')",
        "finetune.quantization: Input should be 'auto', 'none' or '4bit' (got '8bit')",
        "runner.kind: Input should be 'thread', 'dask' or 'ray' (got 'spark')",
        "split.eval_fraction: Input should be less than 1",
        "chunk.max_chunks: Input should be greater than or equal to 1",
        "teacher.concurency: unknown field",
    ]:
        assert line in out.stderr, line
    assert not (tmp_path / "ws").exists()


def test_missing_config_file_is_named(tmp_path):
    result = runner.invoke(app, ["config", "show", "--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "nope.yaml" in result.output


def test_run_problems_found_before_any_server_starts(tmp_path):
    """A missing or file --source, an unknown language, an extension without its dot and an
    unparsable --set: one short message, exit 2, nothing imported or written."""
    a_file = tmp_path / "notes.md"
    a_file.write_text("# Notes\n")
    cases = [
        (["--source", str(tmp_path / "missing")], "no such folder"),
        (["--source", str(a_file)], "a file, not a folder of documents"),
        (["--set", "curate.languages=[english]"], "unknown language code(s) ['english']"),
        (["--set", "ingest.extensions=[md]"], "write them as '.md'"),
        (["--set", "name=@x"], "'@x' is not a YAML value"),
    ]
    code = "import sys, json\nfrom faqforge.cli import app\nresults = []\n"
    for extra, _ in cases:
        args = ["run", "refresh", "--workspace", str(tmp_path / "ws"), *extra]
        if "--source" not in extra:
            args += ["--source", str(ROOT / "faqforge" / "sample_corpus")]
        code += (
            f"try:\n    app({args!r})\nexcept SystemExit as exc:\n    results.append(exc.code)\n"
        )
    code += "print('EXITS', results, 'PREFECT', 'prefect' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=120, check=True)  # fmt: skip
    assert f"EXITS {[2] * len(cases)} PREFECT False" in out.stdout, out.stdout + out.stderr
    for _, message in cases:
        assert message in out.stderr, message
    assert "Traceback" not in out.stderr and len(out.stderr.splitlines()) < 25
    assert not (tmp_path / "ws").exists()


def test_version_and_help_read_plainly():
    from importlib.metadata import version

    assert runner.invoke(app, ["--version"]).output == f"faqforge {version('faqforge')}\n"
    for args in (["--help"], ["run", "refresh", "--help"], ["stage", "dedup", "--help"]):
        shown = runner.invoke(app, args).output
        assert "<bool>" not in shown and "<list" not in shown and "``" not in shown, args
    assert "--set KEY.PATH=VALUE" in runner.invoke(app, ["run", "refresh", "--help"]).output


def test_the_default_config_resolves_outside_the_checkout(tmp_path):
    faqforge = [sys.executable, "-m", "faqforge.cli"]
    out = subprocess.run([*faqforge, "config", "show", "--json"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["name"] == "default" and Path(shown["source"]).is_dir()  # the bundled corpus
    assert shown["workspace"] == str(tmp_path / ".faqforge")


def test_front_stages_run_one_step_each_on_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default workspace (.faqforge) lands here
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("overview.md", "glossary.txt"):
        (corpus / name).write_text((ROOT / "faqforge" / "sample_corpus" / name).read_text())
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 not a pdf")
    steps = [
        ["ingest", "--source", str(corpus), "-o", "docs.jsonl"],
        ["chunk", "-i", "docs.jsonl", "-o", "chunks.jsonl"],
        ["generate", "-i", "chunks.jsonl", "-o", "pairs.jsonl"],
        ["curate", "-i", "pairs.jsonl", "-o", "kept.jsonl"],
    ]
    for step in steps:
        result = runner.invoke(app, ["stage", *step])
        assert result.exit_code == 0, (step, result.output)
    docs = [json.loads(line) for line in (tmp_path / "docs.jsonl").read_text().splitlines()]
    assert sorted(d["source"] for d in docs) == ["glossary.txt", "overview.md"]
    (bad,) = [json.loads(line) for line in (tmp_path / "docs.jsonl.rejections.jsonl").open()]
    assert bad["record_id"].endswith("broken.pdf")
    pairs = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    chunk_ids = {json.loads(line)["chunk_id"] for line in (tmp_path / "chunks.jsonl").open()}
    assert pairs and {p["chunk_id"] for p in pairs} <= chunk_ids
    # The wrong file for a step is named, with what it should be.
    wrong = runner.invoke(app, ["stage", "chunk", "-i", "pairs.jsonl", "-o", "x.jsonl"])
    assert wrong.exit_code == 2 and "not Document records" in wrong.output
