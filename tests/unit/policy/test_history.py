"""policy/history.py and the holder feeding it: each load, refusal and return to the serving
files is recorded, with the problems; bounded."""

from __future__ import annotations

from pathlib import Path

from gatekeeper.metrics import Metrics
from gatekeeper.policy.history import MAX_EVENTS, MAX_PROBLEMS, ReloadHistory
from gatekeeper.policy.reload import PolicyHolder
from tests.support.fakes import run
from tests.support.policy import POLICIES

GOOD = "p, role:viewer, /docs/*, GET, allow\n"


def test_the_history_keeps_the_latest_events_and_a_bounded_number_of_problems() -> None:
    history = ReloadHistory()
    for n in range(MAX_EVENTS + 8):
        history.record(float(n), "file change", "refused", "d", 1,
                       [f"policy.csv:{i}: bad" for i in range(MAX_PROBLEMS + 5)])
    events = list(history.newest_first())
    assert len(events) == MAX_EVENTS and events[0].at == MAX_EVENTS + 7
    assert len(events[0].problems) == MAX_PROBLEMS and events[0].more_problems == 5


def test_the_holder_records_a_load_a_refusal_and_the_return_to_the_serving_files(
        tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.csv"
    policy_file.write_text(GOOD)
    holder = PolicyHolder(POLICIES / "model.conf", policy_file, Metrics())

    async def scenario() -> None:
        await holder.start(watch=False)
        try:
            policy_file.write_text(GOOD + "p, role:viewer, /x, GET, Deny\n")
            assert not await holder.reload("file change")
            policy_file.write_text(GOOD)
            assert not await holder.reload("SIGHUP")  # the same content: no swap, refusal over
            policy_file.write_text(GOOD + "p, role:viewer, /x, GET, allow\n")
            assert await holder.reload("file change")
        finally:
            await holder.aclose()

    run(scenario())
    events = list(holder.history.newest_first())
    assert [(e.reason, e.result) for e in events] == [
        ("file change", "loaded"), ("SIGHUP", "restored"), ("file change", "refused"),
        ("startup", "loaded")]
    refused = events[2]
    assert refused.problems and refused.problems[0].startswith("policy.csv:2:")
    assert refused.digest == events[3].digest == events[1].digest  # the old one kept serving
    assert events[0].digest != events[3].digest and events[0].rules == 2
