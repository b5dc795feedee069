"""Everything the admin console uses, built from the console's services in one place.

The admin screens receive one ``AdminServices``; each part checks the signed-in admin's
permission itself and is plain Python (the same calls from the GUI, tests and scripts).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from audit.trail import AuditTrail
from console import paths
from console.admin.charts import ClinicCharts
from console.admin.exports import TrailExports
from console.admin.policy import ActivePolicy, PolicyAdmin, PolicyError
from console.admin.reports import Reports
from console.admin.review import AuditReview
from console.admin.story import SessionStories
from console.admin.users_admin import UserAdmin
from console.auth import AuthService

POLICY_FOLDER = "policy"


class ConsoleLike(Protocol):
    """What is taken from ``console.services.ConsoleServices``."""

    auth: AuthService
    trail: AuditTrail


@dataclass(frozen=True)
class AdminServices:
    auth: AuthService
    trail: AuditTrail
    review: AuditReview
    stories: SessionStories
    reports: Reports
    exports: TrailExports
    users: UserAdmin
    policy: PolicyAdmin
    charts: ClinicCharts

    @classmethod
    def build(
        cls,
        auth: AuthService,
        trail: AuditTrail,
        policy_folder: Path,
        on_policy_changed: Callable[[ActivePolicy], None] | None = None,
    ) -> AdminServices:
        stories = SessionStories(auth, trail)
        return cls(
            auth=auth,
            trail=trail,
            review=AuditReview(auth, trail),
            stories=stories,
            reports=Reports(auth, trail, stories),
            exports=TrailExports(auth, trail),
            users=UserAdmin(auth),
            policy=PolicyAdmin(auth, trail, policy_folder, on_policy_changed),
            charts=ClinicCharts(auth, trail),
        )

    @classmethod
    def from_console(cls, services: Any, policy_folder: Path | None = None) -> AdminServices:
        """From ``ConsoleServices``: a policy change replaces ``services.rules`` (keeping its
        programme templates), so the next session screens and validates with it."""
        folder = policy_folder or default_policy_folder()

        def put_in_force(policy: ActivePolicy) -> None:
            current = getattr(services, "rules", None)
            services.rules = policy.rules(getattr(current, "programmes", None))

        built = cls.build(services.auth, services.trail, folder, put_in_force)
        # What the admin sees as "in force" is what this console uses. A kept file that no
        # longer parses leaves the rules as they were; the policy page shows why.
        with contextlib.suppress(PolicyError):
            put_in_force(built.policy.active())
        return built


def default_policy_folder() -> Path:
    return paths.data_dir() / POLICY_FOLDER
