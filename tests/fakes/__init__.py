"""In-memory implementations of the ports, for unit tests.

Each fake passes the same contract suite as the real adapter (``tests/contract``), so a
unit test on fakes says something true about the real thing. Each is organised as dsub's
stub provider: methods the code under test calls, then methods a test calls to set up
the world or look at what happened.
"""
