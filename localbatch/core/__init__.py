"""The pure core: job model, state machine, retry rules, resources.

Nothing under ``localbatch.core`` performs I/O, reads a clock, or imports anything
outside the standard library and ``localbatch.core`` itself; ``tests/unit/test_layering.py``
enforces it. Time, ids and observations come in as arguments.
"""
