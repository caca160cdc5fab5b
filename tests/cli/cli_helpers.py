"""The CLI test driver shared by the CLI test modules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from loop.cli import app


class Cli:
    """Runs `loop --db URL --artifacts DIR ...` against one store in a temporary folder."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.url = f"sqlite:///{tmp_path / 'loop.db'}"
        self.artifacts = tmp_path / "artifacts"
        self.runner = CliRunner()

    def __call__(self, *args: Any, code: int = 0, input: str | None = None) -> Result:
        argv = ["--db", self.url, "--artifacts", str(self.artifacts), *map(str, args)]
        res = self.runner.invoke(app, argv, input=input)
        assert res.exit_code == code, (res.exit_code, res.output, res.exception)
        return res

    def json(self, *args: Any, input: str | None = None) -> Any:
        return json.loads(self(*args, "--json", input=input).stdout)

    def fails(self, *args: Any, input: str | None = None) -> str:
        """Run a command that must be refused; the message on stderr."""
        res = self(*args, code=2, input=input)
        assert res.stderr.startswith("error: "), res.output
        assert res.stdout == ""
        return res.stderr
