"""The EMTT unit's SCPI line grammar as pure functions, shared by the simulator and the driver.

A line is split at ``;`` into program message units; each unit's header is resolved against the
command tree with the SCPI path rule (a header that does not start with ``:`` or ``*`` is
relative to the previous command's path; common commands leave the path alone), short and long
mnemonic forms are both accepted in any case, and ``ABORt`` is recognised at every path level
so an emergency stop is never lost to the path rule. Parameters are checked for shape here
(syntax errors -102/-108/-109, header errors -113); state and value checks are the unit's job,
because the ICD ranks them after the syntax checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import Enum

from device_drivers.emtt import constants as c


class ScpiError(Exception):
    """A line that the grammar rejects; ``code`` is the SCPI error to queue."""

    def __init__(self, code: int) -> None:
        super().__init__(f"{code},{c.ERROR_MESSAGES.get(code, 'Error')}")
        self.code = code


@dataclass(frozen=True, slots=True)
class Mnemonic:
    """One header node: ``short`` is the capital letters of the ICD's spelling, ``long`` all."""

    short: str
    long: str

    @classmethod
    def of(cls, spelling: str) -> Mnemonic:
        return cls("".join(ch for ch in spelling if not ch.islower()), spelling.upper())

    def matches(self, word: str) -> bool:
        upper = word.upper()
        return upper == self.short or upper == self.long


class Form(Enum):
    """What a header accepts: the parameter shape of its command and query forms."""

    SETTING = "setting"  # command with one number; query with an optional MIN|MAX
    ACTION = "action"  # command without parameters, no query form
    QUERY = "query"  # query without parameters, no command form
    LOG_QUERY = "log_query"  # query with one number (DIAGnostic:LOG? <from>)


@dataclass(frozen=True, slots=True)
class CommandSpec:
    key: str  # canonical short header, e.g. "SOUR:FIEL" or "*IDN"
    form: Form

    @property
    def has_command_form(self) -> bool:
        return self.form in (Form.SETTING, Form.ACTION)

    @property
    def has_query_form(self) -> bool:
        return self.form is not Form.ACTION


@dataclass(frozen=True, slots=True)
class Command:
    """One resolved program message unit, ready for the unit to check state and value."""

    key: str
    query: bool
    number: Decimal | None = None
    limit: str | None = None  # "MIN" or "MAX" in a limit query


ABORT_KEY = "ABOR"
_ABORT = Mnemonic.of("ABORt")

# The command tree of the ICD. Keys are the canonical short headers the simulator dispatches on.
_TREE_SPEC: tuple[tuple[str, Form], ...] = (
    ("SOURce:FIELd", Form.SETTING),
    ("SOURce:FREQuency", Form.SETTING),
    ("SOURce:PULSes", Form.SETTING),
    ("SESSion:ARM", Form.ACTION),
    ("SESSion:STARt", Form.ACTION),
    ("SESSion:PAUSe", Form.ACTION),
    ("SESSion:RESume", Form.ACTION),
    ("SESSion:STOP", Form.ACTION),
    ("SESSion:STATe", Form.QUERY),
    ("ABORt", Form.ACTION),
    ("SYSTem:ERRor", Form.QUERY),
    ("SYSTem:FAULt:CLEar", Form.ACTION),
    ("SYSTem:HEARtbeat", Form.ACTION),
    ("SYSTem:APPLicator", Form.QUERY),
    ("MEASure:TEMPerature", Form.QUERY),
    ("MEASure:FIELd", Form.QUERY),
    ("DIAGnostic:COIL", Form.QUERY),
    ("DIAGnostic:LOG", Form.LOG_QUERY),
)
COMMON_COMMANDS: dict[str, CommandSpec] = {
    "IDN": CommandSpec("*IDN", Form.QUERY),
    "RST": CommandSpec("*RST", Form.ACTION),
    "CLS": CommandSpec("*CLS", Form.ACTION),
    "ESR": CommandSpec("*ESR", Form.QUERY),
    "OPC": CommandSpec("*OPC", Form.QUERY),
    "TST": CommandSpec("*TST", Form.QUERY),
}


class _Node:
    __slots__ = ("children", "spec")

    def __init__(self) -> None:
        self.children: dict[Mnemonic, _Node] = {}
        self.spec: CommandSpec | None = None

    def child(self, word: str) -> tuple[Mnemonic, _Node] | None:
        for mnemonic, node in self.children.items():
            if mnemonic.matches(word):
                return mnemonic, node
        return None


def _build_tree() -> _Node:
    root = _Node()
    for spelling, form in _TREE_SPEC:
        node = root
        mnemonics = [Mnemonic.of(part) for part in spelling.split(":")]
        for mnemonic in mnemonics:
            node = node.children.setdefault(mnemonic, _Node())
        node.spec = CommandSpec(":".join(m.short for m in mnemonics), form)
    return root


_ROOT = _build_tree()
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*\Z")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z")
_LIMITS = {"MIN": "MIN", "MINIMUM": "MIN", "MAX": "MAX", "MAXIMUM": "MAX"}

#: A path is the canonical short names of the nodes above the last command (root = ()).
Path = tuple[str, ...]


def split_line(line: str) -> list[str]:
    """The program message units of one line (``\\r`` before ``\\n`` ignored); [] if empty."""
    text = line.rstrip("\n").rstrip("\r")
    if not text.strip():
        return []
    return text.split(";")


def _header_and_params(segment: str) -> tuple[str, list[str]]:
    text = segment.strip()
    if not text:
        raise ScpiError(c.SYNTAX_ERROR)  # an empty unit between semicolons
    parts = text.split(None, 1)
    header = parts[0]
    if len(parts) == 1:
        return header, []
    params = [p.strip() for p in parts[1].split(",")]
    if any(not p for p in params):
        raise ScpiError(c.SYNTAX_ERROR)
    return header, params


def _header_words(header: str) -> list[str]:
    words = header.split(":")
    if not all(_WORD.match(w) for w in words):
        raise ScpiError(c.SYNTAX_ERROR)
    return words


def is_abort(segment: str) -> bool:
    """True if the unit is ``ABORt`` at any path level (the emergency stop that always runs)."""
    try:
        header, params = _header_and_params(segment)
        if params or header.startswith("*") or header.endswith("?"):
            return False
        return _ABORT.matches(_header_words(header.removeprefix(":"))[-1])
    except ScpiError:
        return False


def resolve(segment: str, path: Path) -> tuple[Command, Path]:
    """Resolve one unit against the tree at ``path``; returns the command and the new path.

    Raises :class:`ScpiError` with -102, -108, -109 or -113.
    """
    header, params = _header_and_params(segment)
    query = header.endswith("?")
    if query:
        header = header[:-1]
    if header.startswith("*"):
        name = header[1:]
        if not _WORD.match(name):
            raise ScpiError(c.SYNTAX_ERROR)
        spec = COMMON_COMMANDS.get(name.upper())
        if spec is None:
            raise ScpiError(c.UNDEFINED_HEADER)
        new_path = path  # common commands do not move the path
    else:
        absolute = header.startswith(":")
        words = _header_words(header[1:] if absolute else header)
        if _ABORT.matches(words[-1]):
            spec = CommandSpec(ABORT_KEY, Form.ACTION)  # recognised at every path level
            new_path = path
        else:
            start = () if absolute else path
            spec, new_path = _lookup(start, words)
    if (query and not spec.has_query_form) or (not query and not spec.has_command_form):
        raise ScpiError(c.UNDEFINED_HEADER)
    return _with_params(spec, query, params), new_path


def _lookup(start: Path, words: list[str]) -> tuple[CommandSpec, Path]:
    node = _ROOT
    for name in start:
        found = node.child(name)
        assert found is not None, f"path {start} is not in the tree"
        node = found[1]
    names = list(start)
    for word in words:
        found = node.child(word)
        if found is None:
            raise ScpiError(c.UNDEFINED_HEADER)
        mnemonic, node = found
        names.append(mnemonic.short)
    if node.spec is None:
        raise ScpiError(c.UNDEFINED_HEADER)  # a path node, not a command
    return node.spec, tuple(names[:-1])


def _with_params(spec: CommandSpec, query: bool, params: list[str]) -> Command:
    limits = [p for p in params if p.upper() in _LIMITS]
    if spec.form is Form.SETTING and query:
        if not params:
            return Command(spec.key, True)
        if len(params) > 1:
            raise ScpiError(c.PARAMETER_NOT_ALLOWED)
        if not limits:
            raise ScpiError(c.SYNTAX_ERROR)
        return Command(spec.key, True, limit=_LIMITS[params[0].upper()])
    if spec.form is Form.SETTING or spec.form is Form.LOG_QUERY:
        if not params:
            raise ScpiError(c.MISSING_PARAMETER)
        if len(params) > 1:
            raise ScpiError(c.PARAMETER_NOT_ALLOWED)
        return Command(spec.key, query, number=parse_number(params[0]))
    if limits:
        raise ScpiError(c.SYNTAX_ERROR)  # MIN/MAX exist only in the limit queries
    if params:
        raise ScpiError(c.PARAMETER_NOT_ALLOWED)
    return Command(spec.key, query)


def parse_number(token: str) -> Decimal:
    """A command's number: sign, digits, optional point and exponent; no suffix (else -102)."""
    if not _NUMBER.match(token):
        raise ScpiError(c.SYNTAX_ERROR)
    try:
        return Decimal(token)
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
        raise ScpiError(c.SYNTAX_ERROR) from exc


def is_number(token: str) -> bool:
    return bool(_NUMBER.match(token))


def line_keys(line: str) -> frozenset[str]:
    """The canonical keys (``"SESS:STAR"``) of the units of ``line`` up to its first error,
    resolved as the unit resolves them (path rule, short or long form, any case)."""
    keys: set[str] = set()
    path: Path = ()
    for segment in split_line(line):
        try:
            command, path = resolve(segment, path)
        except ScpiError:
            break
        keys.add(command.key)
    return frozenset(keys)


def line_has_query(line: str) -> bool:
    """True if any unit of ``line`` is a query, i.e. the unit may answer with a line."""
    for segment in split_line(line):
        parts = segment.split(None, 1)
        if parts and parts[0].endswith("?"):
            return True
    return False


# --- response formatting (unit side) --------------------------------------------------------
_TENTH = Decimal("0.1")


def format_tenths(value: Decimal | float) -> str:
    """Field, frequency and temperature in responses: one decimal, half-up."""
    number = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    return str(number.quantize(_TENTH, rounding=ROUND_HALF_UP))


def format_error(code: int) -> str:
    return f'{code},"{c.ERROR_MESSAGES[code]}"'


# --- command formatting (host side) ---------------------------------------------------------
def format_number(value: Decimal | int) -> str:
    """A number exactly as given, in plain notation (never rounded, never scientific)."""
    if isinstance(value, bool):
        raise TypeError("a SCPI number cannot be a bool")
    if isinstance(value, int):
        return str(value)
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite number")
    return format(value, "f")
