"""Benchmark: how long the GUI event loop keeps an event waiting while a delivery runs.

The console runs on the demo (EPAT simulator over TCP at real time): a session delivers at
8 Hz with its status streamed 20 times a second, the pulse counter and both live plots updating.
Meanwhile a probe thread posts an event to the GUI thread every 5 ms and records how long each
waited before the GUI thread ran it. That wait is the event-loop stall a key press or a click
would see. A high-priority alarm flashes (2 Hz) and its burst loops meanwhile (``--no-alarm``:
without). Target: p99 <= 16 ms (one frame at 60 Hz).

    .venv/bin/python bench/ui_stall.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ui_common import GuiDriver, alarm_running, demo_console, load, percentiles, run_with_event_loop

from console.session.states import SessionState

PROBE_PERIOD_S = 0.005


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="delivery time measured")
    parser.add_argument(
        "--no-alarm", action="store_true", help="without the high alarm flashing and sounding"
    )
    args = parser.parse_args()
    alarm_note: list[str] = []
    waits_ms: list[float] = []
    counts: list[int] = []

    with demo_console(speed=1.0) as (window, services, password):

        def scenario(gui: GuiDriver) -> None:
            gui.login("therapist", password)
            gui.open_patient("KNEE-1042")
            gui.session_to_delivery("knee-pt-epat", {})
            if not args.no_alarm:
                alarm_note.append(alarm_running(gui, services))
            gui.wait(lambda: window.controller.snapshot.delivered > 0, "the first pulses")
            done = threading.Event()
            lock = threading.Lock()

            def probe() -> None:
                while not done.is_set():
                    posted = time.perf_counter_ns()

                    def ran(posted: int = posted) -> None:
                        with lock:
                            waits_ms.append((time.perf_counter_ns() - posted) / 1e6)

                    gui._dispatch.post(ran)
                    time.sleep(PROBE_PERIOD_S)

            prober = threading.Thread(target=probe, name="stall-probe", daemon=True)
            prober.start()
            time.sleep(args.seconds)
            done.set()
            prober.join()
            counts.append(window.controller.snapshot.delivered)
            if gui.state() is not SessionState.DELIVERING:
                raise RuntimeError(f"the delivery ended early: {window.controller.snapshot}")
            plot = window.delivery_screen.intensity_plot
            counts.append(plot.repaints)
            gui.click(window.delivery_screen.stop_button, "stop")
            gui.wait_state(SessionState.STOPPED)

        run_with_event_loop(window, scenario)

    delivered, repaints = counts
    print(f"GUI event-loop wait during delivery ({args.seconds:g} s, probe every 5 ms):")
    print(f"  {percentiles(waits_ms)}")
    print(f"  {delivered:,} pulses delivered meanwhile; the pressure plot painted {repaints} times")
    print(f"  {alarm_note[0] if alarm_note else 'no alarm running'}")
    print(f"  {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
