"""Whole dedup at 20k pairs: semantic off, semantic on cold, and on again with the vectors kept.

    .venv/bin/python bench/dedup_scale.py [--pairs 20000] [--modules 0]

Real pairs from documentation nobody here wrote: git's HTML manuals (Debian's ``git-doc``,
every page), CPython's documentation topics (``pydoc_data.topics``) and the reference pages
pydoc renders for standard-library modules,
through ingest → chunk → extractive teacher → curate → ambiguity repair, as in a refresh
(``question_quality.prepared``). The first ``--pairs`` of them are deduplicated in this
process, each timing of the whole ``dedup_pairs`` call:
- semantic off (the baseline of the ratios);
- semantic on, cold: an empty vector cache and MiniLM not yet loaded, as a first refresh;
- semantic on, warm: the same pairs again with the vectors kept (``cache/vectors``), as a
  nightly refresh in which nothing changed; same decisions as the cold run, checked.
Goal (issue 15): whole dedup of 20k pairs under 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import pydoc
import shutil
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from question_quality import git_html, prepared, pydoc_corpus  # noqa: E402

from tasks.dedup import dedup_pairs  # noqa: E402

# Reference pages of widely used modules, chosen for size and no import side effects.
MODULES = [
    "abc",
    "argparse",
    "ast",
    "asyncio",
    "base64",
    "bisect",
    "builtins",
    "bz2",
    "calendar",
    "cmath",
    "codecs",
    "collections",
    "concurrent.futures",
    "configparser",
    "contextlib",
    "copy",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "dis",
    "email",
    "enum",
    "filecmp",
    "fnmatch",
    "fractions",
    "ftplib",
    "functools",
    "gc",
    "getopt",
    "gettext",
    "glob",
    "gzip",
    "hashlib",
    "heapq",
    "hmac",
    "html.parser",
    "http.client",
    "http.server",
    "imaplib",
    "importlib",
    "inspect",
    "io",
    "ipaddress",
    "itertools",
    "json",
    "locale",
    "logging",
    "lzma",
    "mailbox",
    "math",
    "mimetypes",
    "mmap",
    "multiprocessing",
    "numbers",
    "operator",
    "optparse",
    "os",
    "pathlib",
    "pickle",
    "platform",
    "plistlib",
    "poplib",
    "pprint",
    "queue",
    "random",
    "re",
    "reprlib",
    "sched",
    "secrets",
    "select",
    "selectors",
    "shelve",
    "shlex",
    "shutil",
    "signal",
    "smtplib",
    "socket",
    "socketserver",
    "sqlite3",
    "ssl",
    "stat",
    "statistics",
    "string",
    "struct",
    "subprocess",
    "sys",
    "sysconfig",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "time",
    "timeit",
    "token",
    "tokenize",
    "tomllib",
    "trace",
    "traceback",
    "types",
    "typing",
    "unicodedata",
    "unittest",
    "urllib.parse",
    "urllib.request",
    "uuid",
    "warnings",
    "wave",
    "weakref",
    "xml.dom.minidom",
    "xml.etree.ElementTree",
    "zipfile",
    "zlib",
]


def module_pages(dest: Path, limit: int) -> None:
    """pydoc's plain-text reference page of each module in ``MODULES`` (first ``limit``)."""
    for name in MODULES[: limit or None]:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            module = importlib.import_module(name)
            text = pydoc.render_doc(module, renderer=pydoc.plaintext)
        (dest / f"module-{name}.txt").write_text(text, encoding="utf-8")


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--modules", type=int, default=0, help="first N modules (0: all)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/faqforge-bench-dedup-scale"))
    args = parser.parse_args()
    source = pydoc_corpus(args.work)
    module_pages(source, args.modules)
    for page in sorted(git_html(args.work).glob("*.html")):
        shutil.copy(page, source / page.name)
    run = prepared(source, args.work / "prepared")
    pairs, cfg = run["repair"].pairs[: args.pairs], run["cfg"].dedup
    print(f"{len(run['docs'])} documents, {len(run['repair'].pairs)} curated pairs; "
          f"deduplicating the first {len(pairs)}", flush=True)  # fmt: skip
    on, off = cfg.model_copy(update={"semantic": True}), cfg.model_copy(update={"semantic": False})
    cache = args.work / "vectors"
    shutil.rmtree(cache, ignore_errors=True)
    t_off, (kept_off, _) = timed(lambda: dedup_pairs(pairs, off))
    t_cold, cold = timed(lambda: dedup_pairs(pairs, on, cache_dir=cache))
    t_warm, warm = timed(lambda: dedup_pairs(pairs, on, cache_dir=cache))
    semantic = sum(r.reason == "semantic_duplicate" for r in cold[1])
    print(f"{'dedup of ' + str(len(pairs)) + ' pairs':<34}{'seconds':>8}{'x off':>7}  goal < 60 s")
    for name, t in (("semantic off", t_off), ("semantic on, cold (MiniLM load too)", t_cold),
                    ("semantic on, vectors kept", t_warm)):  # fmt: skip
        print(f"{name:<34}{t:8.1f}{t / t_off:7.2f}  {'met' if t < 60 else 'NOT met'}")
    print(f"kept: off {len(kept_off)}, on {len(cold[0])} ({semantic} semantic duplicates); "
          f"warm run decides as the cold one: {warm == cold}")  # fmt: skip


if __name__ == "__main__":
    main()
