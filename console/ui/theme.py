"""The console's look in one place: a calm clinical palette, readable type, a red emergency stop.

Colours are chosen for contrast (text ≥ 4.5:1 on its background) and meaning: teal for the
normal path, amber for caution, red only for danger and the emergency stop.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

BACKGROUND = "#EEF2F5"
PANEL = "#FFFFFF"
BORDER = "#C9D3DB"
TEXT = "#1D2A33"
MUTED = "#56656F"
PRIMARY = "#1C6E8C"
PRIMARY_DARK = "#13506A"
OK = "#2E7D4F"
CAUTION = "#9A5B00"
CAUTION_BG = "#FFF4DE"
DANGER = "#C62828"
DANGER_DARK = "#8E1B1B"
DANGER_BG = "#FDECEC"
INFO_BG = "#E6F1F6"
PLOT_PRESSURE = "#1C6E8C"
PLOT_TEMPERATURE = "#C2571A"

FONT_FAMILY = "DejaVu Sans"
BASE_POINT_SIZE = 11

STYLESHEET = f"""
QWidget {{ color: {TEXT}; font-size: {BASE_POINT_SIZE}pt; }}
QMainWindow, QStackedWidget > QWidget {{ background: {BACKGROUND}; }}
QLabel[role="title"] {{ font-size: 18pt; font-weight: bold; color: {TEXT}; }}
QLabel[role="subtitle"] {{ font-size: 12pt; color: {MUTED}; }}
QLabel[role="section"] {{ font-size: 12pt; font-weight: bold; color: {PRIMARY_DARK}; }}
QLabel[role="muted"] {{ color: {MUTED}; }}
QLabel[role="error"] {{ color: {DANGER}; }}
QFrame[role="panel"] {{
    background: {PANEL}; border: 1px solid {BORDER}; border-radius: 6px;
}}
QFrame[role="notice-info"] {{
    background: {INFO_BG}; border: 1px solid {PRIMARY}; border-radius: 6px;
}}
QFrame[role="notice-caution"] {{
    background: {CAUTION_BG}; border: 1px solid {CAUTION}; border-radius: 6px;
}}
QFrame[role="notice-danger"] {{
    background: {DANGER_BG}; border: 1px solid {DANGER}; border-radius: 6px;
}}
QPushButton {{
    background: {PANEL}; border: 1px solid {BORDER}; border-radius: 5px;
    padding: 7px 16px; min-height: 22px;
}}
QPushButton:hover {{ border-color: {PRIMARY}; }}
QPushButton:focus {{ border: 2px solid {PRIMARY}; }}
QPushButton:disabled {{ color: #9AA6AE; background: #F3F5F7; }}
QPushButton[role="primary"] {{
    background: {PRIMARY}; color: white; border: 1px solid {PRIMARY_DARK}; font-weight: bold;
}}
QPushButton[role="primary"]:disabled {{ background: #9DBDCA; color: #EEF4F7; }}
QPushButton[role="caution"] {{ color: {CAUTION}; border-color: {CAUTION}; font-weight: bold; }}
QPushButton[role="estop"] {{
    background: {DANGER}; color: white; border: 3px solid {DANGER_DARK}; border-radius: 8px;
    font-size: 15pt; font-weight: bold; padding: 8px 22px;
}}
QPushButton[role="estop"]:pressed {{ background: {DANGER_DARK}; }}
QLineEdit, QPlainTextEdit, QSpinBox, QComboBox, QDoubleSpinBox, QDateEdit {{
    background: {PANEL}; border: 1px solid {BORDER}; border-radius: 4px; padding: 4px 6px;
}}
QLineEdit, QComboBox, QDateEdit {{ min-height: 24px; }}
QLineEdit:focus, QPlainTextEdit:focus, QComboBox:focus {{ border: 2px solid {PRIMARY}; }}
QLineEdit[invalid="true"] {{ border: 2px solid {DANGER}; background: {DANGER_BG}; }}
QTableWidget, QListWidget, QTreeWidget {{
    background: {PANEL}; border: 1px solid {BORDER}; border-radius: 4px;
    selection-background-color: {INFO_BG}; selection-color: {TEXT};
    alternate-background-color: #F7F9FA;
}}
QHeaderView::section {{
    background: #E3E9EE; color: {TEXT}; border: none; border-right: 1px solid {BORDER};
    padding: 5px; font-weight: bold;
}}
QProgressBar {{
    border: 1px solid {BORDER}; border-radius: 6px; background: #E3E9EE; text-align: center;
    min-height: 26px; font-weight: bold;
}}
QProgressBar::chunk {{ background: {PRIMARY}; border-radius: 5px; }}
QScrollArea {{ border: none; background: transparent; }}
QGroupBox {{
    background: {PANEL}; border: 1px solid {BORDER}; border-radius: 6px; margin-top: 14px;
    padding: 10px 8px 8px 8px; font-weight: bold;
}}
QGroupBox::title {{ subcontrol-origin: margin; left: 10px; padding: 0 4px; color: {PRIMARY_DARK}; }}
QToolTip {{ background: {TEXT}; color: white; border: none; padding: 4px; }}
"""


def apply_theme(app: QApplication) -> None:
    """Set the font, palette and style sheet of the whole application."""
    app.setStyle("Fusion")
    font = QFont(FONT_FAMILY, BASE_POINT_SIZE)
    app.setFont(font)
    palette = app.palette()
    palette.setColor(QPalette.ColorRole.Window, QColor(BACKGROUND))
    palette.setColor(QPalette.ColorRole.Base, QColor(PANEL))
    palette.setColor(QPalette.ColorRole.Text, QColor(TEXT))
    palette.setColor(QPalette.ColorRole.WindowText, QColor(TEXT))
    palette.setColor(QPalette.ColorRole.Highlight, QColor(PRIMARY))
    app.setPalette(palette)
    app.setStyleSheet(STYLESHEET)
