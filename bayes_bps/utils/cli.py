"""How every command ends on bad input: one line on stderr, exit status 2, no traceback."""

from __future__ import annotations

import sys
from typing import NoReturn


class CommandError(SystemExit):
    """SystemExit with argparse's status 2 whose text is the message (for callers and tests)."""

    def __init__(self, message: str):
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


def fail(error: BaseException | str) -> NoReturn:
    """Print `error: <message>` to stderr and exit with status 2."""
    message = f"error: {error}"
    print(message, file=sys.stderr)
    raise CommandError(message)
