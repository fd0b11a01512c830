"""Structure is a test: the core stays pure, SDKs stay in their adapters, adapters stay leaves."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "localbatch"

# Third-party SDK -> the only modules that may import it.
SDK_HOMES = {
    "docker": {"adapters/docker_runtime.py"},
    "requests": {"adapters/docker_runtime.py"},
    "urllib3": {"adapters/docker_runtime.py", "adapters/minio_store.py"},
    "psutil": {"adapters/host.py"},
    "pynvml": {"adapters/host.py"},
    "sqlite3": {"adapters/sqlite_store.py", "adapters/sqlite_backup.py"},
    "minio": {"adapters/minio_store.py"},
    "boto3": {"awsbatch/aws_client.py"},
    "botocore": {"awsbatch/model.py", "awsbatch/aws_client.py", "awsbatch/sigv4.py"},
    "pydantic": {
        "jobdef.py",
        "_jobdef_schema.py",
        "_jobdef_rules.py",
        "config.py",
        "cloud_settings.py",
        "automation_settings.py",
        "policy_settings.py",
        "validation.py",
    },
    "pydantic_core": {"_jobdef_rules.py", "validation.py"},
    "tomli_w": {"jobdef.py"},
    "typer": {"cli/"},
    "rich": {"cli/", "render.py"},
}
# Everything the pure core may import: pure standard-library modules and itself. An allowlist,
# so a new import of anything that touches the outside world fails here until it is argued for.
CORE_STDLIB = {"__future__", "collections", "dataclasses", "enum", "heapq", "math", "posixpath", "re", "typing"}
CORE_MAY_IMPORT = {"localbatch.core", "localbatch.errors"}
# Who may import adapters: only the composition root.
ADAPTER_IMPORTERS = {"bootstrap.py"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _within(rel: str, home: str) -> bool:
    """A module is its home, or inside it when the home names a package (ends with '/')."""
    return rel.startswith(home) if home.endswith("/") else rel == home


def modules() -> list[tuple[str, Path]]:
    return [(str(p.relative_to(PACKAGE)), p) for p in sorted(PACKAGE.rglob("*.py"))]


def test_core_imports_only_pure_stdlib_and_itself():
    offenders = []
    for rel, path in modules():
        if not rel.startswith("core/"):
            continue
        for name in imports(path):
            allowed = name.split(".")[0] in CORE_STDLIB or any(
                name == p or name.startswith(p + ".") for p in CORE_MAY_IMPORT
            )
            if not allowed:
                offenders.append(f"{rel} imports {name}")
    assert offenders == []


def test_the_core_allowlist_is_standard_library():
    assert CORE_STDLIB <= set(sys.stdlib_module_names) | {"__future__"}


def test_sdks_stay_in_their_adapters():
    offenders = []
    for rel, path in modules():
        for name in imports(path):
            top = name.split(".")[0]
            if top in SDK_HOMES and not any(_within(rel, home) for home in SDK_HOMES[top]):
                offenders.append(f"{rel} imports {name}")
    assert offenders == []


def test_only_the_composition_root_imports_adapters():
    offenders = []
    for rel, path in modules():
        if rel.startswith("adapters/") or rel in ADAPTER_IMPORTERS:
            continue
        offenders += [f"{rel} imports {n}" for n in imports(path) if n.startswith("localbatch.adapters")]
    assert offenders == []


def test_adapters_import_no_service_front_door_or_each_other():
    banned = (
        "localbatch.service",
        "localbatch.batch",
        "localbatch.cli",
        "localbatch.bootstrap",
        "localbatch.api",
        "localbatch.daemon",
        "localbatch.client",
    )
    offenders = []
    for rel, path in modules():
        if not rel.startswith("adapters/"):
            continue
        own = "localbatch." + rel[:-3].replace("/", ".")
        for name in imports(path):
            sibling = name.startswith("localbatch.adapters.") and name != own and "._" not in name
            if name.startswith(banned) or sibling:
                offenders.append(f"{rel} imports {name}")
    assert offenders == []
