"""The command line's arguments split into wikisnap's own and Apache Beam's, strictly.

A mistyped flag must never become a Beam option Beam ignores (it only logs "Unparseable
argument" and the run exits 0 without doing what was asked), and an abbreviation must never
silently stand for a longer flag. So wikisnap's flags are matched exactly, an unknown `--flag`
is passed to Beam only when one of Beam's registered `PipelineOptions` defines it, and anything
else stops the command with exit 2 and the nearest known flag.
"""

from __future__ import annotations

import argparse
import difflib

# Top-level switches that are also accepted after the command (`wikisnap build … -q`).
ANYWHERE_SWITCHES = {"-q": "quiet", "--quiet": "quiet", "-v": "verbose", "--verbose": "verbose"}
# Commands that run a Beam pipeline: the only ones that take Beam's options.
BEAM_COMMANDS = ("build", "update")
# Flags wikisnap reads from Beam's arguments though Beam registers no such option:
# `--pipeline_type_check` turns Beam's construction-time type check back on (engine.py).
WIKISNAP_BEAM_SWITCHES = ("--pipeline_type_check",)


def beam_flags() -> dict[str, argparse.Action]:
    """Every flag Beam's registered PipelineOptions define → its argparse action.

    Built as Beam builds its own parser in `PipelineOptions.get_all_options` (one instance of
    each direct subclass of PipelineOptions, `_add_argparse_args`), so a flag is known here
    exactly when Beam would parse it rather than log it as unparseable and drop it.
    """
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    parser = _BeamArgumentParser(allow_abbrev=False, add_help=False)
    classes: dict[str, type] = {}
    for cls in PipelineOptions.__subclasses__():
        classes.setdefault(str(cls), cls)  # as Beam does: a class seen twice registers once
    for cls in classes.values():
        cls._add_argparse_args(parser)  # noqa: SLF001 - Beam's own registration hook
    for name in WIKISNAP_BEAM_SWITCHES:
        parser.add_argument(name, action="store_true")
    return {flag: action for action in parser._actions for flag in action.option_strings}  # noqa: SLF001


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # noqa: SLF001
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return dict(action.choices)
    return {}


def _flags_of(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}  # noqa: SLF001


def _values_taken(action: argparse.Action, following: list[str]) -> int:
    """How many of the arguments `following` a Beam flag given without `=VALUE` takes as values."""
    if action.nargs == 0:
        return 0
    if action.nargs in (None, 1):
        return 1 if following else 0
    if action.nargs == "?":
        return 1 if following and not following[0].startswith("-") else 0
    taken = 0  # "*", "+": every argument up to the next flag
    while taken < len(following) and not following[taken].startswith("-"):
        taken += 1
    return taken


def split_args(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Parse `argv` with wikisnap's `parser`: (its arguments, the arguments for Apache Beam).

    In: the program's parser (a sub-command per command) and its arguments. Out: the namespace
    of wikisnap's own flags, and the Beam options (`--runner X`, `--setup_file=F`, …) of a
    command that runs a pipeline, in their order. wikisnap's flags are matched exactly (no
    abbreviations); `-q`/`-v` count wherever they stand; any other argument that is neither
    wikisnap's nor one of Beam's registered options ends the program with exit 2 and a
    suggestion ("did you mean --qid-map?") in one line.
    """
    commands = _subcommands(parser)
    for sub in (parser, *commands.values()):
        sub.allow_abbrev = False  # `--namespace=0` must not mean `--namespaces 0`
    name = next((a for a in argv if not a.startswith("-")), None)
    command = commands.get(name)
    ours = _flags_of(parser) | (_flags_of(command) if command else set())
    beam = beam_flags() if name in BEAM_COMMANDS else {}
    wikisnap_args, beam_args = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            wikisnap_args += argv[i:]
            break
        flag = arg.split("=", 1)[0]
        if arg.startswith("--") and flag not in ours and flag in beam:
            taken = 0 if "=" in arg else _values_taken(beam[flag], argv[i + 1 :])
            beam_args += argv[i : i + 1 + taken]
            i += 1 + taken
            continue
        wikisnap_args.append(arg)
        i += 1
    args, unknown = parser.parse_known_args(wikisnap_args)
    for arg in [a for a in unknown if a in ANYWHERE_SWITCHES]:
        setattr(args, ANYWHERE_SWITCHES[arg], True)
        unknown.remove(arg)
    if unknown:
        refused_by = command or parser
        reason = refusal(unknown[0], ours | set(beam), name in BEAM_COMMANDS)
        refused_by.exit(2, f"{refused_by.prog}: error: {reason} (see {refused_by.prog} --help)\n")
    return args, beam_args


def beam_args_problem(args: list[str] | tuple[str, ...]) -> str | None:
    """Why a list of Beam arguments given outside the command line (a sync config's `beam_args`)
    would not be what Beam parses: the first argument that is not one of its options, or None."""
    beam = beam_flags()
    i = 0
    while i < len(args):
        arg, flag = args[i], args[i].split("=", 1)[0]
        if not arg.startswith("--"):
            return f"unexpected value {arg!r}: no option before it takes one"
        if flag not in beam:
            return refusal(arg, set(beam), True).replace("wikisnap's or Apache Beam's", "Apache Beam's")
        i += 1 + (0 if "=" in arg else _values_taken(beam[flag], list(args[i + 1 :])))
    return None


def refusal(arg: str, known: set[str], takes_beam_options: bool) -> str:
    """The one-line reason an argument is refused, with the nearest known flag when there is one."""
    if not arg.startswith("-"):
        return f"unexpected argument {arg!r} (inputs go together, before or after the flags, not between them)"
    flag = arg.split("=", 1)[0]
    where = "wikisnap's or Apache Beam's" if takes_beam_options else "this command's"
    message = f"unknown flag {flag}: it is none of {where} options"
    close = difflib.get_close_matches(flag, sorted(known), n=1, cutoff=0.6)
    if not close:  # an abbreviation: the flags it begins
        close = sorted(k for k in known if k.startswith(flag) and k.startswith("--"))[:1]
    return message + (f"; did you mean {close[0]}?" if close else "")
