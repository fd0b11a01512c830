"""Events leaving the daemon: an HTTP POST (``urllib``) and a command run (``subprocess``).

Both return what happened instead of raising, and both are bounded by the timeout they are
given: ``post`` per socket operation (connect, send, each read), ``run_command`` for the
whole run (the command is killed when it runs past it).
"""

from __future__ import annotations

import http.client
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence

_ERROR_CHARS = 300


def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> tuple[int | None, str | None]:
    """POST ``body``; (the status code, None), or (the status code or None, what went wrong).
    Redirects are not followed (a 3xx is the answer)."""
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout_s) as response:
            response.read(64 * 1024)
            return int(response.status), None
    except urllib.error.HTTPError as exc:
        return int(exc.code), f"HTTP {exc.code} {exc.reason}"[:_ERROR_CHARS]
    except urllib.error.URLError as exc:
        return None, f"{url}: {exc.reason}"[:_ERROR_CHARS]
    except (OSError, http.client.HTTPException, ValueError) as exc:  # a timeout is an OSError
        return None, f"{url}: {exc or type(exc).__name__}"[:_ERROR_CHARS]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def run_command(command: Sequence[str], stdin: bytes, timeout_s: float) -> tuple[int | None, str | None]:
    """Run ``command`` with ``stdin``; (exit code, None on success or the end of its stderr)."""
    try:
        done = subprocess.run(list(command), input=stdin, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return None, f"{command[0]}: still running after {timeout_s:g} s; killed"
    except OSError as exc:
        return None, f"{command[0]}: {exc.strerror or exc}"
    if done.returncode == 0:
        return 0, None
    tail = done.stderr.decode(errors="replace").strip()[-_ERROR_CHARS:]
    return done.returncode, f"exit code {done.returncode}" + (f": {tail}" if tail else "")
