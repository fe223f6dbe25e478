"""The `edge-et` command line: the app, its commands (one module each) and the error mapping.

Each command parses its options and calls one library function; commands import the library
inside their bodies, so `edge-et --help` and each command start without loading the rest.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.markup import escape

from edge_et.cli.bench import bench
from edge_et.cli.bundle import bundle_app, list_local, rm
from edge_et.cli.chat import chat
from edge_et.cli.compare import compare
from edge_et.cli.data import data_app
from edge_et.cli.distributed import ray_without_address
from edge_et.cli.eval import eval_app
from edge_et.cli.export import export_app
from edge_et.cli.export_mobile import export_mobile  # noqa: F401 - registers `export mobile`
from edge_et.cli.info import info
from edge_et.cli.plan import plan
from edge_et.cli.profiles import profiles
from edge_et.cli.ps import ps
from edge_et.cli.pull import pull
from edge_et.cli.run import run
from edge_et.cli.serve import serve
from edge_et.cli.shared import err
from edge_et.core.signals import Interrupted, interrupting
from edge_et.errors import EdgeEtError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Extract+Think on your device: a VLM extracts, an LLM thinks.",
)
app.add_typer(export_app, name="export")
app.add_typer(eval_app, name="eval")
app.add_typer(data_app, name="data")
app.add_typer(bundle_app, name="bundle")
for command in (run, chat, info, plan, bench, compare, pull, serve, ps, profiles):
    app.command()(command)
app.command("list")(list_local)
app.command()(rm)


def main() -> None:
    """Entry point: every EdgeEtError becomes one `error:` line on stderr and its exit code (2)."""
    try:
        with interrupting():  # SIGTERM, like Ctrl-C, unwinds: temporary files are cleaned up
            code = app(
                args=ray_without_address(sys.argv[1:]), standalone_mode=False
            )  # typer.Exit(code) -> code
    except EdgeEtError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except Interrupted as exc:
        err.print(f"interrupted by {exc}: nothing half-written was kept", highlight=False)
        # The cleanup ran as the signal unwound; exit now, without the interpreter's teardown,
        # which can crash (SIGSEGV) while a native library's threads (ONNX Runtime, torch)
        # are still busy mid-export.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:
        # typer's (vendored click) usage errors: they know how to show themselves, exit code 2.
        if callable(getattr(exc, "show", None)) and isinstance(
            getattr(exc, "exit_code", None), int
        ):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
