"""Open a therapy device by its link: the one place that knows which driver a link needs."""

from __future__ import annotations

from device_drivers.commlog import CommLog
from device_drivers.interface import TherapyDevice


def open_device(
    *,
    epat_url: str | None = None,
    emtt_resource: str | None = None,
    visa_backend: str = "@py",
    speed: float = 1.0,
    commlog: CommLog | None = None,
    takeover: bool = False,
) -> TherapyDevice:
    """Open the EPAT driver on a pyserial URL or the EMTT driver on a VISA resource.

    ``speed`` is the simulators' speed factor; a host talking to a sped-up simulator scales its
    heartbeat period by it (a real unit runs at 1). A unit that is ARMED, DELIVERING or PAUSED
    raises ``UnitInTreatment`` unless ``takeover`` (only for the console whose session armed
    it, reconnecting or recovering: it must make the unit safe at once; nothing keeps it alive).
    """
    if (epat_url is None) == (emtt_resource is None):
        raise ValueError("name exactly one unit: an EPAT serial URL or an EMTT VISA resource")
    if epat_url is not None:
        from device_drivers.epat.driver import EpatDriver

        return EpatDriver(
            epat_url, heartbeat_interval_s=0.2 / speed, commlog=commlog, takeover=takeover
        )
    from device_drivers.emtt.driver import EmttDriver

    assert emtt_resource is not None
    return EmttDriver(
        emtt_resource,
        backend=visa_backend,
        heartbeat_interval_s=0.3 / speed,
        commlog=commlog,
        takeover=takeover,
    )
