"""An immutable picture of the session for the screens, taken where the workflow's lock is held.

Screens never read the workflow while another thread may be changing it, and never call
``interlocks()`` (which takes the workflow's lock) on the GUI thread: the session thread takes a
``SessionSnapshot`` and hands it over by a queued signal.
"""

from __future__ import annotations

from dataclasses import dataclass

from console.session.interlocks import Interlock
from console.session.ports import PlannedParameters, ScreeningOutcome, ValidationOutcome
from console.session.states import Action, SessionState, allowed_actions
from console.session.workflow import SessionWorkflow
from device_drivers.interface import ApplicatorInfo, DeviceEnvelope, DeviceIdentity, DeviceStatus


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    state: SessionState
    allowed: frozenset[Action]
    delivered: int
    target: int
    interlocks: tuple[Interlock, ...]
    screening: ScreeningOutcome | None
    screening_override_reason: str | None
    plan: PlannedParameters | None
    validation: ValidationOutcome | None
    validated_against_unit: bool
    parameter_override_reason: str | None
    confirmed: bool
    identity: DeviceIdentity | None
    envelope: DeviceEnvelope | None
    applicator: ApplicatorInfo | None
    last_status: DeviceStatus | None
    unit_connected: bool
    end_reason: str | None
    titrations: int
    #: "Signed by … at …; later facts are addenda" once signed; the documentation is read-only
    signed_banner: str | None = None
    #: the next signature is the first since sign-in: user name and password (21 CFR 11.200)
    signing_needs_user_name: bool = True

    @property
    def all_interlocks_hold(self) -> bool:
        return all(i.held for i in self.interlocks)


def take_snapshot(workflow: SessionWorkflow) -> SessionSnapshot:
    """Read the workflow consistently (call on the session thread or inside a listener)."""
    interlocks = tuple(workflow.interlocks())  # takes (re-enters) the workflow's lock
    return SessionSnapshot(
        state=workflow.state,
        allowed=allowed_actions(workflow.state),
        delivered=workflow.delivered,
        target=workflow.target,
        interlocks=interlocks,
        screening=workflow.screening,
        screening_override_reason=workflow.screening_override_reason,
        plan=workflow.plan_params,
        validation=workflow.validation,
        validated_against_unit=workflow.validated_against_unit,
        parameter_override_reason=workflow.parameter_override_reason,
        confirmed=workflow.confirmed,
        identity=workflow.identity,
        envelope=workflow.envelope,
        applicator=workflow.applicator_before,
        last_status=workflow.last_status,
        unit_connected=workflow.worker is not None,
        end_reason=workflow.end_reason,
        titrations=len(workflow.titrations),
        signed_banner=workflow.signed_banner(),
        signing_needs_user_name=(
            workflow.state is SessionState.DOCUMENTED and workflow.signing_needs_user_name()
        ),
    )
