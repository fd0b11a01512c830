"""What containers and users write is shown, never obeyed, by the terminal (issue 10):
``safe_text`` itself, ``logs``/``run``'s output on a terminal and into a pipe, ``top``'s screen,
error messages and the dashboard's log text."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from localbatch import bootstrap, render, safe_text
from localbatch.api.dashboard import clean_log
from localbatch.cli import app
from tests.fakes.object_store import InMemoryObjectStore
from tests.unit.test_watch import NOW, SNAPSHOT

TITLE = "\x1b]0;pwned\x07"  # OSC 0: retitle the window
CLEAR = "\x1b[2J\x1b[H"  # CSI: clear the screen, cursor home
CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4=\x1b\\"  # OSC 52: write the clipboard, ST-terminated
C1_CSI = "\x9b31m"  # the 8-bit CSI
PAYLOADS = [TITLE, CLEAR, CLIPBOARD, C1_CSI, "\x07", "\x08\x08\x08", "\x00"]


def acting(text: str) -> list[str]:
    """The control characters in ``text`` a terminal would act on (newline, tab excepted)."""
    return [c for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_visible_writes_every_control_character_as_an_escape_one_can_read(payload: str) -> None:
    shown = safe_text.visible(f"a{payload}b\n")
    assert acting(shown) == [] and "\n" not in shown
    assert shown.startswith("a") and shown.endswith("b\\x0a")
    assert safe_text.visible(TITLE) == "\\x1b]0;pwned\\x07"
    assert safe_text.visible("line\n\tx\r", keep="\n\t") == "line\n\tx\\x0d"


def test_fields_makes_every_string_of_a_document_visible_keys_too() -> None:
    document = {"jobName": TITLE, "tags": {CLEAR: ["ok", 1, None, C1_CSI]}}
    assert safe_text.fields(document) == {
        "jobName": "\\x1b]0;pwned\\x07",
        "tags": {"\\x1b[2J\\x1b[H": ["ok", 1, None, "\\x9b31m"]},
    }


def test_the_output_filter_decodes_characters_split_between_chunks_and_keeps_progress_lines() -> None:
    shown = safe_text.OutputFilter()
    data = f"é {TITLE} 50%\r100%\n\xff".encode() + b"\xff"
    out = b"".join(shown.feed(data[i : i + 1]) for i in range(len(data))) + shown.end()
    assert out.decode() == "é \\x1b]0;pwned\\x07 50%\r100%\nÿ\ufffd"  # ÿ encoded, then a lone byte


class FakeStdout:
    def __init__(self, terminal: bool) -> None:
        self.buffer = io.BytesIO()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal

    def fileno(self) -> int:
        return 1


@pytest.mark.parametrize("raw", [False, True])
def test_container_output_on_a_terminal_is_shown_not_obeyed_unless_raw(monkeypatch: Any, raw: bool) -> None:
    out = FakeStdout(terminal=True)
    monkeypatch.setattr(sys, "stdout", out)
    chunks = [f"start {CLEAR}".encode(), CLIPBOARD.encode()[:5], CLIPBOARD.encode()[5:] + b"\n"]
    render.write_output(iter(chunks), raw=raw)
    written = out.buffer.getvalue()
    if raw:
        assert written == b"".join(chunks)
    else:
        assert acting(written.decode()) == []
        assert written.decode() == "start \\x1b[2J\\x1b[H\\x1b]52;c;cm0gLXJmIH4=\\x1b\\\n"


def test_container_output_into_a_pipe_or_a_file_is_the_exact_bytes(monkeypatch: Any) -> None:
    out = FakeStdout(terminal=False)
    monkeypatch.setattr(sys, "stdout", out)
    chunks = [TITLE.encode(), b"\xff\xfe", b"\x00\r\n"]
    render.write_output(iter(chunks))
    assert out.buffer.getvalue() == b"".join(chunks)


def test_top_shows_names_and_reasons_from_the_store_without_their_escape_sequences() -> None:
    snapshot: dict[str, Any] = {**SNAPSHOT, "running": [dict(SNAPSHOT["running"][0], jobName=f"train{TITLE}")]}
    head = dict(snapshot["queues"][0]["heads"][0], reason=f"waiting{CLEAR}{CLIPBOARD}", jobName=C1_CSI)
    snapshot["queues"] = [dict(snapshot["queues"][0], heads=[head])]
    screen = io.StringIO()
    console = Console(file=screen, width=300, force_terminal=True, color_system="standard", highlight=False)
    console.print(render.top_view(snapshot, NOW))
    shown = screen.getvalue()
    for payload in PAYLOADS[:4]:
        assert payload not in shown
    assert "\x07" not in shown and "\x9b" not in shown and "\x1b]" not in shown
    assert "train\\x1b]0;pwned\\x07" in shown and "\\x9b31m" in shown


def test_error_messages_show_user_text_without_acting_on_it() -> None:
    screen = io.StringIO()
    Console(file=screen, force_terminal=True, width=200).print(render.error_lines(f"job.toml: unknown key {TITLE}"))
    assert TITLE not in screen.getvalue() and "\\x1b]0;pwned\\x07" in screen.getvalue()


def test_the_dashboard_shows_log_text_as_a_terminal_would_without_the_sequences() -> None:
    assert clean_log(f"a{TITLE}{CLEAR}b{C1_CSI}\n50%\r100%\n".encode()) == "a" + "b31m\n100%\n"


def test_store_ls_shows_a_key_with_escape_sequences_without_acting_on_it(monkeypatch: Any, tmp_path: Any) -> None:
    store = InMemoryObjectStore("bucket")
    store.objects["bucket"][f"a{TITLE}b"] = b"12"
    monkeypatch.setattr(bootstrap, "object_store", lambda _settings: store)
    env = {"LOCALBATCH_HOME": str(tmp_path / "home"), "LOCALBATCH_CONFIG": ""}
    result = CliRunner().invoke(app, ["store", "ls", "s3://bucket/"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output == "           2  s3://bucket/a\\x1b]0;pwned\\x07b\n"
