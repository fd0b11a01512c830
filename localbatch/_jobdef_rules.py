"""Rules for single values in a job definition, each with the sentence a user reads.

Private to ``localbatch.jobdef``. Each rule is a function that returns what is wrong with a
value, or None; ``rule`` makes it a pydantic validator, so a broken rule is reported with
every other problem in the document, in these words and never pydantic's.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from typing import Annotated, TypeVar

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from localbatch.core import staging
from localbatch.core.definition import MAX_TAG_VALUE_CHARS, RESERVED_ENV_PREFIX, tag_key_problem
from localbatch.core.resources import AWS_INT_MAX, vcpus_problem
from localbatch.validation import quote

LOG_DRIVERS = ("json-file", "syslog", "journald", "gelf", "fluentd", "awslogs", "splunk", "awsfirelens")
PLATFORM_CAPABILITIES = ("EC2", "FARGATE")
ASSIGN_PUBLIC_IP = ("ENABLED", "DISABLED")
CPU_ARCHITECTURES = ("X86_64", "ARM64")
OPERATING_SYSTEM_FAMILIES = (
    "LINUX",
    "WINDOWS_SERVER_2019_CORE",
    "WINDOWS_SERVER_2019_FULL",
    "WINDOWS_SERVER_2022_CORE",
    "WINDOWS_SERVER_2022_FULL",
)
MAX_PATTERN = 512
_NAME_CHAR = re.compile(r"[A-Za-z0-9_-]")
_EXIT_CODE_PATTERN = re.compile(r"[0-9]+\*?|\*")
_REASON_PATTERN = re.compile(r"[A-Za-z0-9.: \t]+\*?|\*")
_S3_URI = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?")

T = TypeVar("T")


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("localbatch", "{detail}", {"detail": message})


def suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close:
        close = [c for c in choices if c.lower() == word.lower()]
    return f"; did you mean {quote(close[0])}?" if close else ""


def rule(check: Callable[[T], str | None]) -> AfterValidator:
    """A validator from a function that returns what is wrong, or None."""

    def validate(value: T) -> T:
        message = check(value)
        if message is not None:
            raise _fail(message)
        return value

    return AfterValidator(validate)


def between(low: int, high: int) -> AfterValidator:
    def check(value: int) -> str | None:
        if low <= value <= high:
            return None
        if high == AWS_INT_MAX:  # the limit of AWS's 32-bit Integer, not a rule of its own
            if value < low:
                return f"must be at least {low}, got {value}"
            return f"must be at most {AWS_INT_MAX} (AWS's largest integer), got {value}"
        return f"must be between {low} and {high}, got {value}"

    return rule(check)


def at_least(low: int) -> AfterValidator:
    return between(low, AWS_INT_MAX)


def one_of(choices: Sequence[str]) -> AfterValidator:
    listed = ", ".join(quote(c) for c in choices)

    def check(value: str) -> str | None:
        if value in choices:
            return None
        return f"{quote(value)} is not allowed; allowed: {listed}{suggest(value, choices)}"

    return rule(check)


def max_chars(limit: int) -> AfterValidator:
    def check(value: str) -> str | None:
        return None if len(value) <= limit else f"must be at most {limit} characters, got {len(value)}"

    return rule(check)


def _non_empty(value: str) -> str | None:
    return "must not be empty" if value == "" else None


def _name_chars(limit: int) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if value == "":
            return "must not be empty"
        if len(value) > limit:
            return f"must be at most {limit} characters, got {len(value)}"
        bad = sorted({c for c in value if not _NAME_CHAR.fullmatch(c)})
        if bad:
            return "may contain only letters, digits, '-' and '_'; found " + ", ".join(repr(c) for c in bad)
        return None

    return check


def _absolute(value: str) -> str | None:
    return None if value.startswith("/") else f"must be an absolute path (starting with '/'), got {quote(value)}"


def _s3_uri(value: str) -> str | None:
    if _S3_URI.fullmatch(value):
        return None
    if not value.startswith("s3://"):
        return f"must be an S3 URI starting with 's3://', got {quote(value)}"
    return (
        "must name a bucket: s3://BUCKET/KEY, where BUCKET is 3-63 lower-case letters, digits, "
        f"'.' and '-'; got {quote(value)}"
    )


def _env_name(value: str) -> str | None:
    if value == "":
        return "environment variable names must not be empty"
    if "=" in value:
        return "environment variable names must not contain '='"
    if value.startswith(RESERVED_ENV_PREFIX):
        return f"names starting with {RESERVED_ENV_PREFIX} are reserved for the variables AWS Batch sets"
    return None


def _pattern(syntax: re.Pattern[str], usage: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if len(value) > MAX_PATTERN:
            return f"must be at most {MAX_PATTERN} characters, got {len(value)}"
        if not syntax.fullmatch(value):
            return f"{quote(value)} is not a valid pattern; {usage}"
        return None

    return check


def _action(value: str) -> str | None:
    return None if value.upper() in ("RETRY", "EXIT") else f'{quote(value)} is not allowed; allowed: "retry", "exit"'


def _job_type(value: str) -> str | None:
    if value in ("container", "multinode"):
        return None
    return (
        f'{quote(value)} is not allowed; allowed: "container", "multinode"{suggest(value, ("container", "multinode"))}'
    )


def _unique(items: list[str]) -> str | None:
    duplicates = sorted({i for i in items if items.count(i) > 1})
    return "each value may appear once; repeated: " + ", ".join(quote(d) for d in duplicates) if duplicates else None


def at_most(limit: int, what: str) -> AfterValidator:
    def check(items: Sequence[object]) -> str | None:
        return None if len(items) <= limit else f"at most {limit} {what}, got {len(items)}"

    return rule(check)


def _argument(value: str) -> str | None:
    return "arguments must not be empty strings" if value == "" else None


def _some(items: Sequence[object]) -> str | None:
    return "must not be an empty array" if not items else None


# -- the types the schema is written in ----------------------------------------------------
UNIQUE = rule(_unique)
NON_EMPTY = rule(_some)
Text = Annotated[str, rule(_non_empty)]
JobName = Annotated[str, rule(_name_chars(128))]
VolumeName = Annotated[str, rule(_name_chars(255))]
JobType = Annotated[str, rule(_job_type)]
Image = Annotated[str, rule(_non_empty), max_chars(255)]
Argument = Annotated[str, rule(_argument)]
EnvName = Annotated[str, rule(_env_name)]
TagKey = Annotated[str, rule(tag_key_problem)]
TagValue = Annotated[str, max_chars(MAX_TAG_VALUE_CHARS)]
AbsolutePath = Annotated[str, rule(_absolute)]
S3Uri = Annotated[str, rule(_s3_uri)]
StagingUri = Annotated[str, rule(_s3_uri), rule(staging.template_problem)]  # placeholders in the key only
StagingSource = Annotated[StagingUri, rule(staging.object_name_problem)]
Vcpus = Annotated[float, rule(vcpus_problem)]
AwsInt = Annotated[int, at_least(0)]
Limit = Annotated[int, between(-1, AWS_INT_MAX)]  # -1: unlimited, as Docker and ECS take it
Action = Annotated[str, rule(_action)]
ExitCodePattern = Annotated[
    str, rule(_pattern(_EXIT_CODE_PATTERN, 'use digits, optionally ending with \'*\' ("13*"), or just "*"'))
]
ReasonPattern = Annotated[
    str,
    rule(_pattern(_REASON_PATTERN, "use letters, digits, '.', ':', spaces and tabs, optionally ending with '*'")),
]
