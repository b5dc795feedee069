"""Alarms latch until acknowledged, and acknowledging is reported (so it can be audited)."""

from __future__ import annotations

import pytest

from console.alarms import Alarm, AlarmBoard, AlarmPriority


@pytest.mark.req("SES-ALARM-1")
def test_alarm_latches_until_acknowledged() -> None:
    seen: list[tuple[str, Alarm]] = []
    board = AlarmBoard(lambda what, alarm: seen.append((what, alarm)))
    board.raise_alarm("device.fault", AlarmPriority.HIGH, "EPAT unit fault: OVERTEMP")
    assert [a.key for a in board.active()] == ["device.fault"]
    acknowledged = board.acknowledge("device.fault", "u-therapist")
    assert acknowledged.acknowledged_by == "u-therapist"
    assert board.active() == []
    assert [what for what, _ in seen] == ["raised", "acknowledged"]


@pytest.mark.req("SES-ALARM-1")
def test_highest_priority_first_and_no_downgrade() -> None:
    board = AlarmBoard()
    board.raise_alarm("worker.silent", AlarmPriority.MEDIUM, "device worker silent", technical=True)
    board.raise_alarm("device.fault", AlarmPriority.HIGH, "fault")
    again = board.raise_alarm("device.fault", AlarmPriority.LOW, "fault again")
    assert again.priority is AlarmPriority.HIGH
    assert [a.key for a in board.active()] == ["device.fault", "worker.silent"]


def test_acknowledging_nothing_is_an_error() -> None:
    board = AlarmBoard()
    with pytest.raises(KeyError):
        board.acknowledge("nothing", "u1")
