import pytest
from hypothesis import given
from hypothesis import strategies as st

from localbatch.core.retry import EvaluateOnExit, RetryAction, RetryStrategy, decide, glob_matches

RETRY, EXIT = RetryAction.RETRY, RetryAction.EXIT


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("137", "137", True),
        ("137", "1370", False),
        ("13*", "137", True),
        ("*", "anything", True),
        ("*", "", True),
        ("Host EC2*", "Host EC2 (instance i-1) terminated.", True),
        ("Host EC2*", "host ec2", False),  # case-sensitive, as AWS
        ("1*", None, False),  # a field the attempt lacks matches no pattern ...
        ("*", None, True),  # ... but the bare "*", or AWS's "exit on anything else" idiom breaks
    ],
)
def test_glob_is_exact_or_trailing_star_prefix(pattern, value, expected):
    assert glob_matches(pattern, value) is expected


def failed(
    strategy,
    attempts_made,
    *,
    exit_code=1,
    reason=None,
    status_reason="Essential container in task exited",
    retryable=True,
):
    return decide(
        strategy,
        attempts_made,
        retryable=retryable,
        status_reason=status_reason,
        reason=reason,
        exit_code=exit_code,
    )


def test_default_strategy_never_retries():
    decision = failed(RetryStrategy(), 1)
    assert not decision.retry and decision.why == "all 1 attempt(s) used"


def test_no_rules_retries_until_attempts_are_used():
    strategy = RetryStrategy(attempts=3)
    assert failed(strategy, 1).retry
    assert failed(strategy, 2).retry
    assert not failed(strategy, 3).retry


def test_first_matching_rule_wins():
    strategy = RetryStrategy(
        attempts=5,
        evaluate_on_exit=(
            EvaluateOnExit(EXIT, on_exit_code="3"),
            EvaluateOnExit(RETRY, on_exit_code="*"),
        ),
    )
    assert not failed(strategy, 1, exit_code=3).retry
    assert failed(strategy, 1, exit_code=4).retry
    assert failed(strategy, 1, exit_code=4).why == "evaluate_on_exit[1] matched: RETRY"


def test_no_matching_rule_means_retry():
    strategy = RetryStrategy(attempts=2, evaluate_on_exit=(EvaluateOnExit(EXIT, on_exit_code="2"),))
    decision = failed(strategy, 1, exit_code=1)
    assert decision.retry and decision.why == "no evaluate_on_exit rule matched: RETRY"


def test_every_condition_of_a_rule_must_match():
    rule = EvaluateOnExit(EXIT, on_exit_code="137", on_reason="OutOfMemoryError*")
    assert rule.matches("x", "OutOfMemoryError: Container killed due to memory usage", 137)
    assert not rule.matches("x", None, 137)
    assert not rule.matches("x", "OutOfMemoryError: ...", 1)


def test_rule_on_exit_code_does_not_match_an_attempt_that_never_ran():
    strategy = RetryStrategy(attempts=3, evaluate_on_exit=(EvaluateOnExit(EXIT, on_exit_code="1*"),))
    assert failed(strategy, 1, exit_code=None, reason="CannotPullContainerError: no").retry


def test_spot_idiom_retries_host_loss_and_exits_on_everything_else():
    strategy = RetryStrategy(
        attempts=5,
        evaluate_on_exit=(
            EvaluateOnExit(RETRY, on_status_reason="Host EC2*"),
            EvaluateOnExit(EXIT, on_reason="*"),
        ),
    )
    assert failed(strategy, 1, status_reason="Host EC2 (instance i-0) terminated.", reason=None).retry
    assert not failed(strategy, 1, reason="OutOfMemoryError: x").retry
    # An ordinary non-zero exit has no container.reason at all: "*" still stops it.
    assert not failed(strategy, 1, exit_code=1, reason=None).retry


def test_timed_out_and_terminated_attempts_are_never_retried():
    decision = failed(RetryStrategy(attempts=10), 1, retryable=False)
    assert not decision.retry


def test_a_matching_retry_rule_cannot_retry_a_timed_out_or_terminated_attempt():
    strategy = RetryStrategy(attempts=10, evaluate_on_exit=(EvaluateOnExit(RETRY, on_status_reason="*"),))
    timeout = "Job attempt duration exceeded timeout"
    decision = failed(strategy, 1, exit_code=137, status_reason=timeout, retryable=False)
    assert not decision.retry and "timed-out" in decision.why


def test_a_matching_retry_rule_does_not_add_attempts():
    strategy = RetryStrategy(attempts=2, evaluate_on_exit=(EvaluateOnExit(RETRY, on_exit_code="*"),))
    assert failed(strategy, 1).retry
    decision = failed(strategy, 2)
    assert not decision.retry and decision.why == "all 2 attempt(s) used"


def test_status_reason_and_reason_match_exactly_or_by_prefix():
    exact = EvaluateOnExit(EXIT, on_status_reason="Essential container in task exited")
    assert exact.matches("Essential container in task exited", None, 1)
    assert not exact.matches("Essential container in task exited.", None, 1)
    pull = EvaluateOnExit(RETRY, on_reason="CannotPullContainerError:*")
    assert pull.matches("Task failed to start", "CannotPullContainerError: pull access denied", None)
    assert not pull.matches("Task failed to start", "CannotStartContainerError: no", None)


def test_a_rule_with_no_conditions_matches_every_failure():
    strategy = RetryStrategy(
        attempts=3,
        evaluate_on_exit=(EvaluateOnExit(EXIT), EvaluateOnExit(RETRY, on_exit_code="*")),
    )
    decision = failed(strategy, 1, exit_code=1)
    assert not decision.retry and decision.why == "evaluate_on_exit[0] matched: EXIT"


def test_an_earlier_retry_rule_beats_a_later_exit_rule_that_also_matches():
    strategy = RetryStrategy(
        attempts=3,
        evaluate_on_exit=(EvaluateOnExit(RETRY, on_exit_code="1*"), EvaluateOnExit(EXIT, on_exit_code="1")),
    )
    assert failed(strategy, 1, exit_code=1).retry


@given(attempts=st.integers(1, 10), codes=st.lists(st.integers(0, 255), min_size=10, max_size=10))
def test_a_job_never_gets_more_attempts_than_its_strategy_allows(attempts, codes):
    strategy = RetryStrategy(attempts=attempts)
    made = 0
    for code in codes:
        made += 1
        if code == 0 or not failed(strategy, made, exit_code=code).retry:
            break
    assert made <= attempts
