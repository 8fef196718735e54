"""Every (current, target) pair of job statuses, against a table written out by hand."""

from __future__ import annotations

import itertools

import pytest

from trainyard.domain import JobStatus as S
from trainyard.domain import allowed_predecessors, can_transition

# Written independently of the implementation: forward along the path (skips allowed, since
# an intermediate event can be lost), FAILED/CANCELLED from anything unfinished, nothing out
# of a terminal state, nothing back.
ALLOWED = {
    (S.PENDING, S.DOWNLOADING),
    (S.PENDING, S.DOWNLOADED),
    (S.PENDING, S.RUNNING),
    (S.PENDING, S.EXPORTING),
    (S.PENDING, S.SUCCEEDED),
    (S.DOWNLOADING, S.DOWNLOADED),
    (S.DOWNLOADING, S.RUNNING),
    (S.DOWNLOADING, S.EXPORTING),
    (S.DOWNLOADING, S.SUCCEEDED),
    (S.DOWNLOADED, S.RUNNING),
    (S.DOWNLOADED, S.EXPORTING),
    (S.DOWNLOADED, S.SUCCEEDED),
    (S.RUNNING, S.EXPORTING),
    (S.RUNNING, S.SUCCEEDED),
    (S.EXPORTING, S.SUCCEEDED),
}
for unfinished in (S.PENDING, S.DOWNLOADING, S.DOWNLOADED, S.RUNNING, S.EXPORTING):
    ALLOWED |= {(unfinished, S.FAILED), (unfinished, S.CANCELLED)}


@pytest.mark.parametrize("current,target", list(itertools.product(S, S)))
def test_transition_table(current: S, target: S) -> None:
    assert can_transition(current, target) is ((current, target) in ALLOWED)


def test_terminal_states_have_no_way_out() -> None:
    for terminal in (S.SUCCEEDED, S.FAILED, S.CANCELLED):
        assert not any(terminal in allowed_predecessors(target) for target in S)


def test_no_status_can_be_re_entered() -> None:
    assert all(status not in allowed_predecessors(status) for status in S)
