"""The user docs: a short README that links every page of docs/, commands that exist."""

import os
import re

from d2v_fairseq.cli import build_parser

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        return f.read()


def test_readme_is_short_and_links_every_docs_page():
    readme = read("README.md")
    assert len(readme.splitlines()) <= 150
    pages = sorted(p for p in os.listdir(os.path.join(REPO, "docs")) if p.endswith(".md"))
    assert len(pages) >= 9
    for page in pages:
        assert f"(docs/{page})" in readme, f"README does not link docs/{page}"


def test_every_d2v_command_in_the_docs_exists():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # argparse keeps no public map
    texts = [read("README.md")] + [read(os.path.join("docs", p)) for p in os.listdir(os.path.join(REPO, "docs"))
                                   if p.endswith(".md")]
    used = {m for text in texts for m in re.findall(r"(?m)(?:^|[`(] ?)d2v ([a-z][a-z-]*)", text)}
    assert used and used <= set(commands), f"unknown d2v commands in the docs: {sorted(used - set(commands))}"
    kinds = commands["prepare"]._subparsers._group_actions[0].choices
    prepared = {m for text in texts for m in re.findall(r"d2v prepare ([a-z-]+)", text)}
    assert prepared <= set(kinds), f"unknown d2v prepare recipes: {sorted(prepared - set(kinds))}"
