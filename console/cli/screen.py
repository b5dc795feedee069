"""``therapy-console screen CASE.json``: screen one case in the vignette format.

Prints the decision as one JSON object on stdout and exits 0 whatever the decision (a block is
an answer, not a failure). A file that is not a screening case exits 2 with one line saying
what is wrong. ``--expect`` also compares with the case's own ``expect`` (exit 1 on mismatch);
``--rules FILE`` screens with another rule-set file (a clinic's new policy under review).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from console.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, CommandError
from protocols import (
    CaseFormatError,
    ClinicalDataError,
    ClinicalInputError,
    RuleSet,
    ScreeningCase,
    ScreeningDecision,
    default_library,
    default_ruleset,
    parse_case,
    parse_ruleset,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "screen",
        help="screen a case (vignette JSON) for contraindications and print the decision",
        description=(
            "Screen one case in the vignette format (clinical reference §4) against the "
            "contraindication rules and print the decision as JSON. Exit 0 whatever the "
            "decision; 2 when the file is not a case."
        ),
    )
    parser.add_argument("case", type=Path, help="the case file (JSON)")
    parser.add_argument(
        "--expect",
        action="store_true",
        help="also compare with the case's 'expect' block; exit 1 when they differ",
    )
    parser.add_argument(
        "--rules",
        type=Path,
        metavar="FILE",
        help="screen with this rule-set file (TOML) instead of the shipped default policy",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    ruleset = _ruleset(args.rules) if args.rules else default_ruleset()
    case = _case(args.case)
    try:
        decision = case.screen(ruleset=ruleset)
    except ClinicalInputError as exc:
        raise CommandError(f"{args.case}: {exc}", EXIT_USAGE) from exc
    print(json.dumps(decision_json(case, decision), indent=2))
    if args.expect:
        return _compare(case, decision, args.case)
    return EXIT_OK


def decision_json(case: ScreeningCase, decision: ScreeningDecision) -> dict[str, Any]:
    """The printed object: the decision record plus the case id."""
    return {"case_id": case.case_id, **decision.to_record()}


def _case(path: Path) -> ScreeningCase:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read case file {path}: {exc}", EXIT_USAGE) from exc
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"{path} is not a case: not valid JSON ({exc.msg} at line {exc.lineno}, "
            f"column {exc.colno})",
            EXIT_USAGE,
        ) from exc
    except _DuplicateKey as exc:
        raise CommandError(f"{path} is not a case: {exc}", EXIT_USAGE) from exc
    try:
        return parse_case(document)
    except CaseFormatError as exc:
        raise CommandError(f"{path} is not a case: {exc}", EXIT_USAGE) from exc


def _ruleset(path: Path) -> RuleSet:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read rule-set file {path}: {exc}", EXIT_USAGE) from exc
    try:
        return parse_ruleset(text, str(path), known_protocols=default_library().protocols)
    except ClinicalDataError as exc:
        raise CommandError(f"rule set not accepted: {exc}", EXIT_USAGE) from exc


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A key given twice is ambiguous (which answer counts?), so the case is refused."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(f"key {key!r} appears twice in one object: keep one answer")
        result[key] = value
    return result


def _compare(case: ScreeningCase, decision: ScreeningDecision, path: Path) -> int:
    if case.expected_decision is None:
        raise CommandError(f"{path} has no 'expect' block to compare with", EXIT_USAGE)
    problems = []
    if decision.decision.value != case.expected_decision:
        problems.append(f"decision {decision.decision.value}, expected {case.expected_decision}")
    if case.expected_rules is not None and sorted(decision.rules) != sorted(case.expected_rules):
        problems.append(f"rules {sorted(decision.rules)}, expected {sorted(case.expected_rules)}")
    if problems:
        print(f"therapy-console: {path}: " + "; ".join(problems), file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK
