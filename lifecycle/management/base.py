"""A base for management commands that talk to Temporal."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError


class TemporalCommand(BaseCommand):
    """Ends the process without interpreter finalization once the command is done.

    The Temporal core's Rust threads can outlive the event loop and abort CPython's finalization
    (sdk-python issue 300: "PyGILState_Release ... finalizing"), turning a clean exit into SIGABRT.
    Only the command-line entry point does this; `call_command` in tests returns normally.
    """

    def run_from_argv(self, argv: list[str]) -> None:
        code = 0
        try:
            super().run_from_argv(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except CommandError as err:  # with --traceback Django re-raises instead of printing
            self.stderr.write(f"CommandError: {err}")
            code = err.returncode
        except KeyboardInterrupt:
            code = 130
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    def handle(self, *args: Any, **options: Any) -> Any:
        raise NotImplementedError
