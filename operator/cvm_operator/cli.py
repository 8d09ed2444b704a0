"""`cvm-operator` command line: one subcommand per function, dispatched by `main(argv)`.

To add a subcommand, write `_add_<name>(subparsers)` registering a parser whose `handler` default is
a function `(args) -> int`, and call it from `build_parser`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

Handler = Callable[[argparse.Namespace], int]


def run_crds(args: argparse.Namespace) -> int:
    """Print every CRD as one multi-document YAML stream, or write one file per kind."""
    from .api.common import GROUP
    from .api.crd import crd_files, crds_yaml

    output_dir: Path | None = args.output_dir
    if output_dir is None:
        sys.stdout.write(crds_yaml())
        return 0
    output_dir.mkdir(parents=True, exist_ok=True)
    wanted = crd_files()
    for name, text in wanted.items():
        (output_dir / name).write_text(text, encoding="utf-8")
    # Files of kinds that no longer exist would otherwise linger and still be applied.
    for stale in sorted(output_dir.glob(f"{GROUP}_*.yaml")):
        if stale.name not in wanted:
            stale.unlink()
    for name in wanted:
        print(output_dir / name)
    return 0


def _add_crds(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "crds",
        help="print the CustomResourceDefinitions generated from the API types",
        description="Print all CRDs as multi-document YAML, or write one file per kind with --output-dir.",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="write <group>_<plural>.yaml files here (removing stale ones of the group) instead of printing",
    )
    parser.set_defaults(handler=run_crds)


def _add_run(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], *, load: bool) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the operator",
        description="Reconcile Image, ImageShare, ImageCopy and Instance objects against the CVM API.",
    )
    if not load:
        # The operator's import chain is heavy; other subcommands (e.g. `crds` in `make crds`) must not need it.
        return
    from .runner import add_arguments, run

    add_arguments(parser)
    parser.set_defaults(handler=run)


def _command_of(argv: Sequence[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; subcommands load their (possibly heavy) modules only when `command` names them."""
    parser = argparse.ArgumentParser(prog="cvm-operator", description="Tencent Cloud CVM operator for Kubernetes.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_crds(subparsers)
    _add_run(subparsers, load=command == "run")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(arguments)
    if command == "run":
        from .memprofile import install_from_environment

        install_from_environment()  # before the heavy imports, so that they are traced too
    parser = build_parser(command)
    args = parser.parse_args(arguments)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
