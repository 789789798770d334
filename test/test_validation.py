"""Bad input is counted and logged once per reason."""
import math

from hilserl_ros.ros.validation import DropCounter, non_finite, worth_telling


class ListLogger:
    def __init__(self):
        self.lines = []

    def warning(self, text):
        self.lines.append(text)


def test_each_reason_is_logged_once_and_every_drop_counted():
    log = ListLogger()
    drops = DropCounter(log, "transition")
    for _ in range(5):
        drops.drop("observation[3] is nan")
    drops.drop("action has 3 values, expected 4")
    assert drops.total == 6
    assert drops.by_reason["observation[3] is nan"] == 5
    assert len(log.lines) == 2
    assert "dropped a transition: observation[3] is nan" in log.lines[0]


def test_non_finite_names_the_first_bad_value():
    assert non_finite("action", [0.1, -0.2, 1.0]) is None
    assert non_finite("action", [0.1, math.inf, math.nan]) == "action[1] is inf"


def test_a_recurring_condition_is_told_at_each_order_of_magnitude_then_every_ten_thousand():
    told = [n for n in range(0, 50001) if worth_telling(n)]
    assert told == [1, 10, 100, 1000, 10000, 20000, 30000, 40000, 50000]
