"""The use case behind ``localbatch validate``: check definition files, no daemon and no
container involved. Everything else goes through the API (``batch.BatchService``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from localbatch import jobdef
from localbatch.core import portability
from localbatch.errors import JobDefinitionError


@dataclass(frozen=True)
class FileReport:
    """What ``validate`` found in one job definition file."""

    file: Path
    problems: list[str]  # what makes the file invalid
    warnings: list[str]  # what runs locally but AWS Batch would refuse

    def failed(self, strict: bool) -> bool:
        return bool(self.problems or (strict and self.warnings))


def validate_files(paths: list[Path]) -> list[FileReport]:
    reports = []
    for path in paths:
        try:
            portable = portability.definition_problems(jobdef.load_file(path))
            reports.append(FileReport(path, [], [str(p) for p in portable]))
        except JobDefinitionError as exc:
            reports.append(FileReport(path, [str(p) for p in exc.problems], []))
    return reports
