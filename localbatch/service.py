"""The use case behind ``localbatch validate``: check definition files, no daemon and no
container involved. Everything else goes through the API (``batch.BatchService``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from localbatch import jobdef
from localbatch.awsbatch.jobdefinition import payload_problem, to_register_request
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
            definition = jobdef.load_file(path)
            portable = portability.definition_problems(definition)
            too_big = payload_problem("RegisterJobDefinition", to_register_request(definition))
            reports.append(FileReport(path, [too_big] if too_big else [], [str(p) for p in portable]))
        except JobDefinitionError as exc:
            reports.append(FileReport(path, [str(p) for p in exc.problems], []))
    return reports
