"""The docs: the site builds with ``mkdocs build --strict`` (a broken link, a page missing from the
navigation, or an API reference to code that is gone fails), and the README is a short guide whose
every command runs here: each ```` ```bash ```` line of it is executed, with a few overrides that make
its fits and studies tiny, in a folder where ``experiments/`` and ``docs/`` are the repository's."""

from __future__ import annotations

import doctest
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from gan_lab.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXAMPLES = ROOT / "docs" / "examples"

#: appended to every README fit: 2-member 16-unit nets, 3 G steps
TINY_FIT = [
    "--model.max_g_steps=3",
    "--model.generator.init_args.members=2",
    "--model.discriminator.init_args.members=2",
    "--model.generator.init_args.hidden=16",
    "--model.discriminator.init_args.hidden=16",
    "--trainer.enable_progress_bar=false",
]
#: appended to every README study: 2 G steps of 8-unit nets, one job at a time (and no W&B but for
#: the demo's folder, whose W&B runs `gan-lab dashboard` reads)
TINY_STUDY = [
    "--jobs",
    "1",
    "--model.max_g_steps=2",
    "--model.generator.init_args.hidden=8",
    "--model.discriminator.init_args.hidden=8",
]


def build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=config.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


# --------------------------------------------------------------------------------------------------
# The site
# --------------------------------------------------------------------------------------------------


def test_the_site_builds_strictly(tmp_path):
    """What `make docs` runs (into a tmp folder): no warning, every page of the nav, the reference
    rendered from the docstrings, the example loss included from its file."""
    assert "\t$(BIN)/mkdocs build --strict\n" in (ROOT / "Makefile").read_text()
    done = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING -" not in done.stderr
    site = tmp_path / "site"
    for page in ("index", "guide/first-fit", "guide/extending", "reference/losses", "DESIGN"):
        assert (site / f"{page}.html").is_file(), page
    assert 'id="gan_lab.losses.get_objective"' in (site / "reference/losses.html").read_text()
    extending = (site / "guide/extending.html").read_text()
    assert "SmoothedNonSaturating" in extending and "--8&lt;--" not in extending
    assert "fonts.googleapis" not in (site / "index.html").read_text()  # no web fonts: offline


@pytest.mark.parametrize(
    ("page", "named"),
    [
        ("::: gan_lab.losses.NoSuchObjective\n", "gan_lab.losses.NoSuchObjective"),  # code that is gone
        ("[gone](no-such-page.md)\n", "no-such-page.md"),  # a page that is not
        ("[here](index.md#no-such-section)\n", "no-such-section"),  # an anchor that is not
    ],
)
def test_a_stale_reference_or_a_broken_link_fails_the_build(tmp_path, page, named):
    """The site's own configuration, on one page with one stale reference."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text(f"# Stale\n\n{page}")
    config.update(docs_dir="docs", site_dir="site", nav=["index.md"])
    config["hooks"] = [str(ROOT / h) for h in config["hooks"]]
    python = config["plugins"][1]["mkdocstrings"]["handlers"]["python"]
    python["paths"] = [str(ROOT)]
    python["options"]["extensions"] = [str(ROOT / e) for e in python["options"]["extensions"]]
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    done = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0
    assert named in done.stdout + done.stderr


def test_results_tables_are_generated_with_the_machine_they_ran_on(tmp_path):
    """docs/gen_results.py: mean ± s.e. over seeds per entry, the machine from study.json, else
    "unknown" (never the machine that runs the script)."""
    gen = load_gen_results()
    study = tmp_path / "s"
    study.mkdir()
    (study / "results.csv").write_text(
        "study,objective,member,seed,g_steps,mode/modes,wall_time_s,status\n"
        "s,hinge,0,0,10,6,1.0,ok\ns,hinge,1,1,10,8,1.0,ok\ns,minimax,0,0,10,3,1.0,diverged at g_steps=7\n"
    )
    page = gen.results_page(study)
    assert "| hinge | 2 | 10 | 7.0 ± 1.0 | 1.000 ± 0.000 | ok |" in page
    assert "| minimax | 1 | 10 | 3 | 1 | diverged at g_steps=7 |" in page
    assert "machine: unknown" in page
    (study / "study.json").write_text('{"study": "s", "machine": {"cpu": "Some CPU"}, "torch": "2.4.0"}')
    assert "- machine: Some CPU; torch 2.4.0" in gen.results_page(study)
    assert gen.main([str(tmp_path / "empty")]) == 2


def test_the_results_page_lists_the_generated_pages():
    """docs/hooks/results.py: guide/results.md links every docs/results/*.md page, or says there is none."""
    spec = importlib.util.spec_from_file_location("results_hook", ROOT / "docs" / "hooks" / "results.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)

    class Files:
        def __init__(self, *uris):
            self.uris = uris

        def documentation_pages(self):
            return [SimpleNamespace(src_uri=u) for u in self.uris]

    page = SimpleNamespace(file=SimpleNamespace(src_uri="guide/results.md"))
    text = (ROOT / "docs" / "guide" / "results.md").read_text()
    assert hook.MARKER in text
    listed = hook.on_page_markdown(text, page, None, Files("index.md", "results/ring8-demo.md"))
    assert "- [ring8-demo](../results/ring8-demo.md)" in listed and hook.MARKER not in listed
    assert "*(none yet)*" in hook.on_page_markdown(text, page, None, Files("index.md"))


@pytest.mark.parametrize(
    "path", ["docs/gen_results.py", "docs/hooks/docstrings.py", "docs/hooks/griffe_args.py"]
)
def test_the_docs_tools_doctests(path):
    """The examples in the docs' own tools run (docs/ is outside the suite's --doctest-modules paths)."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def load_gen_results():
    spec = importlib.util.spec_from_file_location("gen_results", ROOT / "docs" / "gen_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------------
# The README
# --------------------------------------------------------------------------------------------------


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", text, flags=re.M | re.S)


def readme_commands() -> list[str]:
    """Every command of the README's ```` ```bash ```` blocks: continuation lines joined, comments cut."""
    commands = []
    for block in blocks(README.read_text(), "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            command = " ".join(shlex.split(line, comments=True))
            if command:
                commands.append(command)
    return commands


def test_the_readme_is_a_short_guide():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    top = "\n".join(text.splitlines()[:8])
    assert re.search(r"^make demo +# \S", top, flags=re.M)  # shown first, with what it does
    assert re.search(r"^make test +# \S", top, flags=re.M)
    for figure in re.findall(r"\d+\.\d+ ± \d+\.\d+", text):  # no typed results
        pytest.fail(f"the README quotes a result ({figure}); generate it with docs/gen_results.py")


def test_the_readmes_links_and_anchors_exist():
    text = README.read_text()
    slugs = {
        re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.*)$", text, re.M)
    }
    for target in re.findall(r"\]\(([^)]+)\)", text):
        if target.startswith("#"):
            assert target[1:] in slugs, target
        elif not re.match(r"https?://", target):
            assert (ROOT / target.split("#")[0]).exists(), target


def test_the_readmes_example_is_the_file_the_tests_run():
    """The README shows docs/examples/my_loss.py and my_study.yaml as they are."""
    text = README.read_text()
    assert (EXAMPLES / "my_loss.py").read_text() in blocks(text, "python")
    assert (EXAMPLES / "my_study.yaml").read_text() in blocks(text, "yaml")


def test_make_demo_and_make_test_run_what_the_readme_says():
    makefile = (ROOT / "Makefile").read_text()
    assert (
        "$(BIN)/gan-lab study experiments/studies/ring8.yaml" in makefile.split("\ndemo:")[1].split("\n\n")[0]
    )
    assert '$(BIN)/pytest -q -m "not slow"' in makefile.split("\ntest:")[1].split("\n\n")[0]
    assert "pytestmark" not in Path(__file__).read_text().split("def test_")[0]  # this file is in make test


def run_readme_command(command: str, monkeypatch, capsys) -> str:
    """Run one README command in the current folder, its fits and studies made tiny; its stdout."""
    words = shlex.split(command)
    env = {}
    while "=" in words[0]:
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    for name, value in env.items():  # PYTHONPATH=docs/examples: this process and the study's workers
        monkeypatch.setenv(name, os.pathsep.join(str(Path(p).resolve()) for p in value.split(os.pathsep)))
        if name == "PYTHONPATH":
            for p in value.split(os.pathsep):
                monkeypatch.syspath_prepend(str(Path(p).resolve()))
    program, args = words[0], words[1:]
    capsys.readouterr()
    if program == ".venv/bin/gan-lab":
        if args == ["--help"]:
            assert main(args) == 0
        elif args[0] == "fit" and "--print_config" in args:
            with pytest.raises(SystemExit) as done:
                main(args)
            assert done.value.code == 0
        elif args[0] == "fit":
            assert main([*args, *TINY_FIT]) == 0, command
        elif args[0] == "study":
            wandb = [] if args == ["study", "experiments/studies/ring8.yaml"] else ["--no-wandb"]
            assert main([*args, *TINY_STUDY, *wandb]) == 0, command
        else:
            assert main(args) == 0, command
    elif program == ".venv/bin/python" and args[0] == "docs/gen_results.py":
        assert load_gen_results().main(args[1:]) == 0
    elif program == "make":
        assert args in (["demo"], ["test"])  # test_make_demo_and_make_test_run_what_the_readme_says
    else:
        pytest.fail(f"no runner for the README command {command!r}: add one to tests/test_docs.py")
    return capsys.readouterr().out


def test_every_readme_command_runs(tmp_path, monkeypatch, capsys):
    """Each command of the README, in its order, from a folder holding the repository's
    experiments/ and docs/ (what it writes goes to runs/ and results/ there)."""
    for name in ("experiments", "docs"):
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.chdir(tmp_path)
    commands = readme_commands()
    assert commands[:2] == ["make demo", "make test"]
    out = {c: run_readme_command(c, monkeypatch, capsys) for c in commands}

    assert "dashboard" in out[".venv/bin/gan-lab --help"] and "``" not in out[".venv/bin/gan-lab --help"]
    printed = next(o for c, o in out.items() if "--print_config" in c)
    assert yaml.safe_load(printed)["model"]["objective"] == "hinge"
    run = tmp_path / "runs" / "fit" / "ring8" / "version_0"  # the folder the README names
    assert (run / "config.yaml").is_file() and (run / "metrics.csv").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()

    demo, other = tmp_path / "runs" / "ring8-demo", tmp_path / "results" / "ring8-demo"
    study_section = README.read_text().split("## One study")[1].split("\n## ")[0]
    listed = re.findall(r"`([^`<>/]+)`", "\n".join(re.findall(r"^\| (.*?) \|", study_section, re.M)))
    assert "report.md" in listed
    for study in (demo, other):  # every file the README's table names is there
        assert set(listed) <= {p.name for p in study.iterdir()}, listed
    assert (demo / "wasserstein" / "checkpoints" / "last.ckpt").is_file()  # <objective>/: each run
    assert (demo / "dashboard.json").is_file()
    table = next(o for c, o in out.items() if "gen_results.py" in c)
    assert "| hinge | 8 |" in table and "machine: " in table  # the demo's 8 seeds

    # your own loss in your own file, in a study
    mine = tmp_path / "runs" / "my-loss"
    rows = (mine / "results.csv").read_text().splitlines()
    assert {r.split(",")[1] for r in rows[1:]} == {"non_saturating", "smoothed"}
    assert len(rows) == 1 + 2 * 4


def test_the_readme_fit_config_snippet_fits(tmp_path):
    """The YAML of "One experiment" is a config `gan-lab fit` takes beside the base config."""
    (snippet,) = [b for b in blocks(README.read_text(), "yaml") if b.startswith("model:")]
    (tmp_path / "snippet.yaml").write_text(snippet)
    args = [
        "fit",
        "--config",
        str(ROOT / "experiments/toy/ring8.yaml"),
        "--config",
        str(tmp_path / "snippet.yaml"),
    ]
    assert main([*args, *TINY_FIT, "--trainer.logger=false", f"--trainer.default_root_dir={tmp_path}"]) == 0
