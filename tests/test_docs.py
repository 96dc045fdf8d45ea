"""The README and the docs pages say what the software does: every `medfew` command in their code
blocks composes, every learner they name exists, and every relative link points at a file (and a
heading) that exists.

A command is composed, not run: ``medfew <args> --cfg job`` prints the config and stops, so a
misspelt key, config choice or preset fails here in a second instead of minutes into a run. A
template's placeholders (``<folder>``) are replaced by a dummy value first, so its keys are checked
too. A sweep (``-m``) is composed once per swept value, since Hydra prints no config for a multirun.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]  # BENCHMARKS keeps commands as they were run
HYDRA_COMMANDS = ("run", "plan", "pretrain", "metatrain", "audit", "fit", "predict")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
PLACEHOLDER = re.compile(r"<[^<>\n]+>")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
LEARNERS = {path.stem for path in (ROOT / "configs" / "learner").glob("*.yaml")}


def commands(page: Path) -> list[str]:
    """The `medfew <command> ...` lines of ``page``'s fenced code blocks, continuation lines joined."""
    found = []
    for block in FENCE.findall(page.read_text()):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = line.strip()
            if line.startswith("medfew ") and line.split()[1] in HYDRA_COMMANDS:
                found.append(line)
    return found


def argv(line: str) -> list[str]:
    """The arguments of one command line: comments dropped, placeholders replaced by a dummy value (by a
    config of the group where the placeholder picks one: ``learner=<name>``)."""
    args = shlex.split(PLACEHOLDER.sub("PLACEHOLDER", line), comments=True)[1:]
    return [choice(arg) for arg in args]


def choice(arg: str) -> str:
    """``arg``, or ``group=<a config of the group>`` where a placeholder stands for a config group's choice."""
    key, _, value = arg.partition("=")
    group = ROOT / "configs" / key.lstrip("+~")
    if value == "PLACEHOLDER" and group.is_dir():
        return f"{key}={min(path.stem for path in group.glob('*.yaml') if not path.stem.startswith('_'))}"
    return arg


def jobs(args: list[str]) -> list[list[str]]:
    """``args`` as one or more single-run command lines: a sweep (-m) once per value of each swept key."""
    if "-m" not in args and "--multirun" not in args:
        return [args]
    command, overrides = args[0], [a for a in args[1:] if a not in ("-m", "--multirun")]
    parsed = OverridesParser.create().parse_overrides(overrides)
    first = [f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override() else o.input_line for o in parsed]
    out = [[command, *first]]
    for i, override in enumerate(parsed):
        if override.is_sweep_override():
            for value in list(override.sweep_string_iterator())[1:]:
                out.append([command, *first[:i], f"{override.get_key_element()}={value}", *first[i + 1 :]])
    return out


CASES = [(page.relative_to(ROOT).as_posix(), line) for page in COMMAND_PAGES for line in commands(page)]


def medfew() -> list[str]:
    """The `medfew` script of this interpreter's environment, else `python -m medfew` (the same app)."""
    script = Path(sys.executable).with_name("medfew")
    return [str(script)] if script.exists() else [sys.executable, "-m", "medfew"]


def test_the_readme_shows_the_commands_a_newcomer_needs():
    lines = [line for page, line in CASES if page == "README.md"]
    for command in ("run", "plan", "fit", "predict", "audit", "pretrain"):
        assert any(line.split()[1] == command for line in lines), f"README shows no `medfew {command}` command"
    text = (ROOT / "README.md").read_text()
    assert "make run" in text and "make test" in text  # .ci/run calls `make test`, the README's test command
    assert len(text.splitlines()) <= 300, "the README is a front page; reference material goes to docs/"


@pytest.mark.parametrize(("page", "line"), CASES, ids=[f"{page}:{line[:60]}" for page, line in CASES])
def test_every_command_composes(page: str, line: str, tmp_path: Path):
    env = {**os.environ, "MEDFEW_DATA": os.environ.get("MEDFEW_DATA") or str(ROOT.parent / "shared" / "data")}
    for args in jobs(argv(line)):
        shown = "--help" in args or "--cfg" in args  # already a command that prints and stops
        args = args if shown else [*args, "--cfg", "job"]
        done = subprocess.run([*medfew(), *args], check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{page}: `medfew {shlex.join(args)}` failed:\n{done.stderr[-3000:]}"
        if "--help" in args:
            continue
        cfg = yaml.safe_load(done.stdout)
        named = [*(cfg.get("learners") or []), *([cfg["learner"]] if isinstance(cfg.get("learner"), str) else [])]
        unknown = [name for name in named if name not in LEARNERS and "PLACEHOLDER" not in str(name)]
        assert not unknown, f"{page}: `{line}` names learners with no configs/learner/<name>.yaml: {unknown}"
        for name in re.findall(r"(?:^|\s)(?:\+\+|\+)?learner=(\w+)", " ".join(args)):
            assert name in LEARNERS, f"{page}: `{line}` names learner={name}, which has no config"


def slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading: lower case, punctuation but ``-`` and ``_`` dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {slug(m) for m in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, re.MULTILINE)}


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_relative_links_resolve(page: Path):
    broken = []
    for target in LINK.findall(FENCE.sub("", page.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target} (no file {file})")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target} (no heading '#{anchor}' in {file.name})")
    assert not broken, f"{page.name}: broken links: {broken}"
