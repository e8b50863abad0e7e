"""Write the reference pages of the documentation site from the code itself.

    python docs/gen_reference.py        # rewrites docs/commands/*.md and docs/api.md

One page per command from its argparse definition (the very text `wikisnap COMMAND --help`
prints), and the Python API page from the signatures and docstrings of pipelines/api.py.
tests/test_docs.py fails when a committed page differs from what this writes, so a new flag or a
changed help text cannot leave the site behind.
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

DOCS = Path(__file__).resolve().parent


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _default(action: argparse.Action) -> str:
    value = action.default
    if value in (None, False, [], argparse.SUPPRESS) or isinstance(action, argparse._StoreTrueAction):
        return ""
    if isinstance(value, (tuple, list)):
        return f"`{','.join(map(str, value))}`"
    return f"`{value}`"


def command_page(name: str, parser: argparse.ArgumentParser) -> str:
    lines = [
        f"# wikisnap {name}",
        "",
        _cell(parser.description or ""),
        "",
        "```",
        parser.format_usage().strip(),
        "```",
        "",
    ]
    lines += ["| argument | default | meaning |", "|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        flags = ", ".join(action.option_strings) or (action.metavar or action.dest)
        if action.option_strings and action.metavar:
            flags += f" {action.metavar}"
        elif action.option_strings and action.choices and not isinstance(action, argparse._StoreTrueAction):
            flags += " " + "\\|".join(map(str, action.choices))
        lines.append(f"| `{_cell(flags)}` | {_default(action)} | {_cell(action.help or '')} |")
    if parser.epilog:
        lines += ["", "```", parser.epilog.strip(), "```"]
    return "\n".join(lines) + "\n"


def _docstring(obj) -> str:
    """A docstring as Markdown: its `>>>` examples in a Python code block."""
    out, in_code = [], False
    for line in (inspect.getdoc(obj) or "").splitlines():
        if in_code and line.startswith("... "):
            out.append(line[4:])
        elif line.startswith(">>> "):
            out += [] if in_code else ["```python"]
            in_code = True
            out.append(line[4:])
        elif in_code and line.strip():
            out.append(f"# {line}")  # what the example returns
        else:
            out += ["```"] if in_code else []
            in_code = False
            out.append(line)
    return "\n".join(out + (["```"] if in_code else []))


def _signature(name: str, fn) -> str:
    params = [f"    {p}," for p in inspect.signature(fn).parameters.values()]
    star = next((i for i, p in enumerate(inspect.signature(fn).parameters.values()) if p.kind == p.KEYWORD_ONLY), None)
    if star is not None:
        params.insert(star, "    *,")
    return "\n".join([f"wikisnap.{name}(", *params, f") -> {inspect.signature(fn).return_annotation}"])


def api_page() -> str:
    from wikisnap.pipelines import api, errors

    lines = ["# Python API", "", inspect.getdoc(api) or "", ""]
    for name in ("build", "update", "publish", "verify", "sync", "recover", "show"):
        fn = getattr(api, name)
        lines += [f"## wikisnap.{name}", "", "```python", _signature(name, fn), "```", ""]
        lines += [_docstring(fn), ""]
    for cls in (api.Result, api.Output):
        lines += [f"## wikisnap.{cls.__name__}", "", inspect.getdoc(cls) or "", ""]
        lines += [f"- `{f}`: `{t}`" for f, t in cls.__annotations__.items()] + [""]
    lines += ["## Errors", "", inspect.getdoc(errors) or "", ""]
    return "\n".join(lines).rstrip() + "\n"


def pages() -> dict[str, str]:
    """Page path (relative to docs/) → its text."""
    import os

    from wikisnap.pipelines.cli import make_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps usage lines to the terminal: the same on every machine
    (commands,) = [a for a in make_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    out = {f"commands/{name}.md": command_page(name, parser) for name, parser in commands.choices.items()}
    out["api.md"] = api_page()
    return out


if __name__ == "__main__":
    for rel, text in pages().items():
        (DOCS / rel).parent.mkdir(parents=True, exist_ok=True)
        (DOCS / rel).write_text(text, encoding="utf-8")
        print(f"wrote docs/{rel}")
