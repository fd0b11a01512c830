"""``python -m localbatch``: the same app as the ``localbatch`` console script."""

from localbatch.cli import app

app()
