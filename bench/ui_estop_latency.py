"""Benchmark: emergency-stop latency from the key press to the unit's acknowledgement.

The console runs on the demo (EPAT simulator over TCP at real time, its status streamed 20 times
a second, live plots drawing). For each sample a session is delivering; the benchmark posts an
Esc key press to the window (a Qt event, as the keyboard would) and measures until the driver
has the unit's ACK of ESTOP. Then the session is documented and signed, the unit's latched fault
is cleared in the next session, and the next sample follows. A high-priority alarm flashes and
its burst loops throughout (``--no-alarm``: without). Target: p99 <= 20 ms.

    .venv/bin/python bench/ui_estop_latency.py [--samples 40] [--deliver-s 0.5]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from PySide6.QtCore import QCoreApplication, QEvent, Qt
from PySide6.QtGui import QKeyEvent
from ui_common import (
    GuiDriver,
    alarm_running,
    demo_console,
    load,
    percentiles,
    run_with_event_loop,
)

from console.session.states import SessionState


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--deliver-s", type=float, default=0.5, help="delivery before each press")
    parser.add_argument(
        "--no-alarm", action="store_true", help="without the high alarm flashing and sounding"
    )
    args = parser.parse_args()
    alarm_note: list[str] = []

    acks: list[int] = []
    ack_seen = threading.Condition()
    latencies_ms: list[float] = []

    with demo_console(speed=1.0) as (window, services, password):
        opener = services.unit_opener

        def timed_opener(modality, session_id=None):
            open_unit = opener(modality, session_id)

            def open_timed():
                driver = open_unit()
                real = driver.emergency_stop

                def emergency_stop() -> int:
                    delivered = real()  # returns once the unit's ACK is in
                    with ack_seen:
                        acks.append(time.perf_counter_ns())
                        ack_seen.notify_all()
                    return delivered

                driver.emergency_stop = emergency_stop
                return driver

            return open_timed

        services.unit_opener = timed_opener  # instrumentation only: the ACK's arrival time

        def scenario(gui: GuiDriver) -> None:
            gui.login("therapist", password)
            gui.open_patient("KNEE-1042")
            if not args.no_alarm:
                alarm_note.append(alarm_running(gui, services))
            for i in range(args.samples):
                gui.session_to_delivery("knee-pt-epat", {})
                time.sleep(args.deliver_s)  # plots and telemetry running
                with ack_seen:
                    before = len(acks)
                # Made on the GUI thread (an input event looks up the keyboard device there).
                press, release = gui.call(
                    lambda: tuple(
                        QKeyEvent(kind, Qt.Key.Key_Escape, Qt.KeyboardModifier.NoModifier)
                        for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease)
                    )
                )
                t0 = time.perf_counter_ns()
                QCoreApplication.postEvent(window, press)
                QCoreApplication.postEvent(window, release)
                with ack_seen:
                    if not ack_seen.wait_for(lambda n=before: len(acks) > n, timeout=5.0):
                        raise TimeoutError(f"sample {i}: no ESTOP acknowledgement within 5 s")
                    latencies_ms.append((acks[before] - t0) / 1e6)
                gui.wait_state(SessionState.FAULTED)
                gui.document_and_sign(password)
                print(f"  sample {i + 1}: {latencies_ms[-1]:.2f} ms", file=sys.stderr, flush=True)

        run_with_event_loop(window, scenario)

    print("Emergency stop, Esc key press (posted Qt event) -> unit ACK, while delivering:")
    print(f"  {percentiles(latencies_ms)}")
    print(f"  {alarm_note[0] if alarm_note else 'no alarm running'}")
    print(f"  {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
