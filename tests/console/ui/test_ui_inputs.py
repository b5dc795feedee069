"""Inputs that cannot change by accident (issue 13.2): the wheel, the scroll position, decimal
input by the locale, Alt shortcuts in text fields. Each test is named after its defect."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from PySide6.QtCore import QLocale, QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QComboBox, QLineEdit, QVBoxLayout, QWidget

from console.ui.input_guard import install_input_guard
from console.ui.numbers import parse_number
from console.ui.screens.planning import PlanningScreen
from console.ui.screens.screening import ScreeningScreen
from console.ui.views import FieldRangeView, ProtocolView
from console.ui.widgets import ReasonBox, button
from tests.console.ui.snapshots import PROTOCOL, QUESTIONS

pytestmark = [pytest.mark.gui]

EMTT = ProtocolView(
    **{
        **{f: getattr(PROTOCOL, f) for f in PROTOCOL.__dataclass_fields__},
        "fields": (
            FieldRangeView("field_mt", "Field", "mT", Decimal("10"), Decimal("80"), Decimal("40")),
            FieldRangeView(
                "frequency_hz", "Frequency", "Hz", Decimal("4"), Decimal("10"), Decimal("8")
            ),
            FieldRangeView(
                "pulses", "Pulses", "pulses", Decimal("1500"), Decimal("9000"), Decimal("6000")
            ),
        ),
    }
)


@pytest.fixture
def guard(qapp: QApplication) -> Iterator[None]:
    guard = install_input_guard(qapp)
    try:
        yield
    finally:
        qapp.removeEventFilter(guard)
        guard.setParent(None)  # found no more by the next install


@pytest.fixture
def english() -> Iterator[None]:
    before = QLocale()
    QLocale.setDefault(QLocale(QLocale.Language.English, QLocale.Country.UnitedStates))
    try:
        yield
    finally:
        QLocale.setDefault(before)


def _wheel(widget: QWidget, down: bool = True) -> None:
    centre = QPointF(widget.rect().center())
    event = QWheelEvent(
        centre,
        QPointF(widget.mapToGlobal(centre.toPoint())),
        QPoint(0, 0),
        QPoint(0, -120 if down else 120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


def _screening(qtbot) -> ScreeningScreen:
    screen = ScreeningScreen()
    qtbot.addWidget(screen)
    screen.resize(700, 260)  # small enough for the page to scroll
    screen.show()
    qtbot.waitExposed(screen)
    screen.set_questions(QUESTIONS)
    qtbot.waitUntil(lambda: screen.scroll.verticalScrollBar().maximum() > 0)
    return screen


# ------------------------------------------------------------------ wheel and scroll position
@pytest.mark.req("UI-INPUT-1")
def test_mouse_wheel_over_the_implant_box_no_longer_changes_none_to_pacemaker(qtbot, guard) -> None:
    screen = _screening(qtbot)
    row = screen.rows["active_implant"]
    row.set_answer(None)  # "none"
    combo = row.editor.findChild(QComboBox)
    assert combo is not None and not combo.hasFocus()
    bar = screen.scroll.verticalScrollBar()
    assert bar.maximum() > 0
    for _ in range(3):
        _wheel(combo)
    assert row.answer() == (True, None)  # the answer stayed "none"
    assert bar.value() > 0  # the page scrolled instead
    assert not combo.hasFocus()
    combo.setFocus()  # a box the user chose does take the wheel
    qtbot.waitUntil(combo.hasFocus)
    _wheel(combo)
    assert row.answer() != (True, None)


@pytest.mark.req("UI-INPUT-1")
def test_mouse_wheel_over_an_unfocused_date_box_changes_nothing(qtbot, guard) -> None:
    screen = _screening(qtbot)
    row = screen.rows["corticosteroid_injection_date"]
    row.set_answer("2025-01-02")
    date_box = row._date
    assert date_box is not None and not date_box.hasFocus()
    _wheel(date_box, down=False)
    _wheel(date_box.lineEdit() if hasattr(date_box, "lineEdit") else date_box, down=False)
    assert row.answer() == (True, "2025-01-02")


@pytest.mark.req("UI-INPUT-2")
def test_each_new_screening_starts_at_the_top_not_where_the_last_one_was(qtbot) -> None:
    screen = _screening(qtbot)
    bar = screen.scroll.verticalScrollBar()
    bar.setValue(bar.maximum())
    assert bar.value() > 0
    screen.set_questions(QUESTIONS)  # the next patient's screening
    qtbot.wait(10)
    assert bar.value() == 0


# ------------------------------------------------------------------ decimal input by the locale
FIELDS = [
    (PROTOCOL, "pressure_bar"),
    (PROTOCOL, "frequency_hz"),
    (PROTOCOL, "pulses"),
    (EMTT, "field_mt"),
]
REFUSED = {
    "2,5": "',' is not read here",
    "2.000": "ambiguous",
    "1e3": "without an exponent",
    "٢٫٥": "digits 0–9",
}


@pytest.mark.req("UI-INPUT-3")
@pytest.mark.parametrize(("protocol", "name"), FIELDS, ids=[n for _, n in FIELDS])
@pytest.mark.parametrize("typed", list(REFUSED), ids=["comma", "thousands", "exponent", "arabic"])
def test_ambiguous_decimal_input_is_refused_where_2_5_bar_was_read_as_25(
    qtbot, english, protocol: ProtocolView, name: str, typed: str
) -> None:
    """The defects: "2,5" bar read as 25, "2.000" pulses as 2, "4,5" mT as 45."""
    screen = PlanningScreen()
    qtbot.addWidget(screen)
    screen.set_protocol(protocol)
    editor = screen.editors[name]
    editor.edit.setText(typed)
    with qtbot.assertNotEmitted(screen.plan_requested):
        qtbot.mouseClick(screen.validate_button, Qt.MouseButton.LeftButton)
    assert REFUSED[typed] in editor.problem.text()
    assert editor.edit.text() == typed  # never rewritten


@pytest.mark.req("UI-INPUT-3")
@pytest.mark.parametrize(("protocol", "name"), FIELDS, ids=[n for _, n in FIELDS])
def test_spaces_around_a_number_change_nothing_and_pulses_stay_whole(
    qtbot, english, protocol: ProtocolView, name: str
) -> None:
    screen = PlanningScreen()
    qtbot.addWidget(screen)
    screen.set_protocol(protocol)
    editor = screen.editors[name]
    editor.edit.setText(" 2.5 ")
    if name == "pulses":
        with qtbot.assertNotEmitted(screen.plan_requested):
            qtbot.mouseClick(screen.validate_button, Qt.MouseButton.LeftButton)
        assert "whole number" in editor.problem.text()
        return
    with qtbot.waitSignal(screen.plan_requested) as blocker:
        qtbot.mouseClick(screen.validate_button, Qt.MouseButton.LeftButton)
    plan = blocker.args[0]
    assert getattr(plan, name) == Decimal("2.5")


@pytest.mark.req("UI-INPUT-3")
def test_a_comma_locale_reads_4_5_mt_as_four_and_a_half_never_45(qtbot) -> None:
    before = QLocale()
    QLocale.setDefault(QLocale(QLocale.Language.German, QLocale.Country.Germany))
    try:
        screen = PlanningScreen()
        qtbot.addWidget(screen)
        screen.set_protocol(EMTT)
        assert screen.editors["field_mt"].edit.text() == "40"
        screen.editors["field_mt"].edit.setText("4,5")
        with qtbot.waitSignal(screen.plan_requested) as blocker:
            qtbot.mouseClick(screen.validate_button, Qt.MouseButton.LeftButton)
        assert blocker.args[0].field_mt == Decimal("4.5")
        screen.editors["field_mt"].edit.setText("4.5")  # the other separator: refused
        with qtbot.assertNotEmitted(screen.plan_requested):
            qtbot.mouseClick(screen.validate_button, Qt.MouseButton.LeftButton)
        assert "'.' is not read here" in screen.editors["field_mt"].problem.text()
    finally:
        QLocale.setDefault(before)


@pytest.mark.req("UI-INPUT-3")
@pytest.mark.parametrize(
    ("typed", "point", "whole", "value"),
    [
        ("2.5", ".", False, Decimal("2.5")),
        ("2,5", ",", False, Decimal("2.5")),
        ("0.125", ".", False, Decimal("0.125")),  # a leading zero cannot be a thousands group
        ("2000", ".", True, Decimal("2000")),
        ("2,000", ",", True, None),  # ambiguous in a comma locale too
        ("2.000", ",", True, None),
        (".5", ".", False, None),
        ("2 5", ".", False, None),
        ("-", ".", False, None),
        ("", ".", False, None),
    ],
)
def test_number_reading_is_strict_in_either_locale(
    typed: str, point: str, whole: bool, value: Decimal | None
) -> None:
    got, problem = parse_number(typed, point, whole=whole)
    assert got == value
    assert (problem is None) == (value is not None)


@pytest.mark.req("UI-INPUT-3")
def test_the_screenings_whole_number_question_does_not_read_arabic_digits_or_exponents(
    qtbot,
) -> None:
    screen = ScreeningScreen()
    qtbot.addWidget(screen)
    screen.set_questions(QUESTIONS)
    row = screen.rows["failed_conservative_care_months"]
    for typed in ("٢", "1e3", "2.000", "2,5"):
        row._int.setText(typed)  # type: ignore[union-attr]
        assert row.answer()[0] is False, typed  # unanswered (flagged), never a guess
    row._int.setText(" 7 ")  # type: ignore[union-attr]
    assert row.answer() == (True, 7)


# ------------------------------------------------------------------ Alt shortcuts
@pytest.mark.req("UI-INPUT-4")
def test_alt_o_in_a_reason_box_no_longer_types_o_into_the_recorded_reason(qtbot, guard) -> None:
    host = QWidget()
    qtbot.addWidget(host)
    reason = ReasonBox("why", 20)
    line = QLineEdit()
    clicked: list[bool] = []
    override = button("Record &override")
    override.clicked.connect(lambda: clicked.append(True))
    layout = QVBoxLayout(host)
    for widget in (reason, line, override):
        layout.addWidget(widget)
    host.show()
    host.activateWindow()
    qtbot.waitActive(host)  # shortcuts act in the active window
    reason.edit.setFocus()
    qtbot.waitUntil(reason.edit.hasFocus)
    qtbot.keyClicks(reason.edit, "knee")
    qtbot.keyClick(reason.edit, Qt.Key.Key_O, Qt.KeyboardModifier.AltModifier)
    qtbot.keyClick(reason.edit, Qt.Key.Key_X, Qt.KeyboardModifier.AltModifier)
    qtbot.waitUntil(lambda: clicked == [True])  # Alt+O still presses "Record &override"
    assert reason.text() == "knee"  # the defect typed "o" (and "x", no shortcut) here
    line.setFocus()
    qtbot.waitUntil(line.hasFocus)
    qtbot.keyClick(line, Qt.Key.Key_Q, Qt.KeyboardModifier.AltModifier)
    qtbot.keyClicks(line, "ok")
    assert line.text() == "ok"
