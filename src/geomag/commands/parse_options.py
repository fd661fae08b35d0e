"""The options of a parse as flags, shared by `geomag parse`, `geomag magcrop`, `geomag batch` and
`geomag eval`: one flag per row of the option table (`geomag.options.OPTIONS`).

Each flag checks its value against the table while argparse reads it (`--layer 999` is one
`geomag: error: argument --layer: layer must be between -64 and 63, not 999` line and exit 2,
before any model is built), with the message `ParseOptions` and the server give. Flags left unset
are None here and take the library's default there. `geomag.options` imports no torch, so building
the CLI stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from geomag.errors import GeoMagError
from geomag.options import OPTIONS, Option, Value

ADDED = "_parse_options"  # the Namespace attribute listing the options a command's flags set


def _reader(row: Option) -> Callable[[str], Value]:
    """argparse's `type=`: the flag's text as the option's value, checked against its row."""

    def read(text: str) -> Value:
        value: Value = text
        try:
            if row.type is int:
                value = int(text)
            elif row.type is float:
                value = float(text)
        except ValueError:
            pass  # row.check names the type it wants
        try:
            return row.check(value)
        except GeoMagError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    read.__name__ = row.name  # argparse names it in "invalid <name> value" (not reached: we raise)
    return read


def add_parse_arguments(
    p: argparse.ArgumentParser, answer: bool = True, granularity: bool = True, no_magcrop: bool = True
) -> None:
    """A flag for every option offered on the CLI; `answer=False` leaves out the answer's options
    (`geomag magcrop`), `granularity` / `no_magcrop=False` the ones a command words its own way."""
    skip = set() if granularity else {"granularity"}
    if not (answer and no_magcrop):
        skip.add("magcrop")
    added = []
    g = p.add_argument_group("parse options (the same as geomag.parse(...) and the server's form fields)")
    for row in OPTIONS:
        if "cli" not in row.surfaces or row.name in skip or (row.answer and not answer):
            continue
        default = "auto" if row.default is None else row.default
        if row.type is bool:
            g.add_argument(row.flag, dest=row.name, action="store_const", const=not row.default,
                           default=None, help=row.help)  # fmt: skip
        else:
            metavar = "{" + ",".join(row.choices) + "}" if row.choices else row.name.upper()
            bounds = f"; {row.bounds_text()}" if row.minimum is not None else ""
            g.add_argument(row.flag, dest=row.name, type=_reader(row), metavar=metavar,
                           help=f"{row.help} (default {default}{bounds})")  # fmt: skip
        added.append(row.name)
    p.set_defaults(**{ADDED: (*getattr(p, "_defaults", {}).get(ADDED, ()), *added)})


def option_values(args: argparse.Namespace) -> dict[str, object]:
    """The ParseOptions fields the flags set (unset flags are left to the library's defaults)."""
    values: dict[str, object] = {name: getattr(args, name, None) for name in getattr(args, ADDED, ())}
    values["device"] = getattr(args, "device", None)
    return values
