"""Adapters: one third-party SDK per module, each implementing a port from ``localbatch.ports``.

Adapters import ``localbatch.core``, ``localbatch.ports``, ``localbatch.errors`` and their own SDK,
never each other, the service layer or the front doors. They translate SDK errors into
``localbatch.errors`` at the border.
"""
