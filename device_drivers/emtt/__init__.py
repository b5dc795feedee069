"""The EMTT (magnetotransduction) unit: SCPI over VISA, per ``shared/icd/emtt-scpi.md``.

Public API (what the console and the CLI build on):

- :class:`device_drivers.emtt.driver.EmttDriver` ``(resource, *, backend="@py",
  heartbeat_interval_s=0.3, timeout_ms=200, commlog=None, retries=2)`` — the host side; a
  :class:`~device_drivers.interface.TherapyDevice` plus ``settings()``, ``coil_diagnostics()``,
  ``raw_command(line)`` (refused while ARMED/DELIVERING/PAUSED), ``identity`` and
  ``link_stats`` for the service console.
- :class:`device_drivers.emtt.simulator.EmttSimulator` ``(speed=1.0, serial=...,
  applicator_present=True, *, seed=None)`` — the instrument side, with the shared
  fault-injection methods (``set_drop_fraction``, ``set_corrupt_fraction``,
  ``set_reply_delay``, ``cut_link``, ``power_cycle``, ``force_overtemp``,
  ``remove_applicator``, ``fit_applicator``, ``wear_out_applicator``, ``set_field_deviation``)
  and ``snapshot()`` for tests.
- :class:`device_drivers.emtt.server.EmttTcpServer` ``(simulator, host, port)`` (``.resource``
  = ``TCPIP0::HOST::PORT::SOCKET``) and :class:`device_drivers.emtt.server.EmttPtyServer`
  ``(simulator)`` (``.resource`` = ``ASRL/dev/pts/N::INSTR``).
- :class:`device_drivers.emtt.codec.ParameterRejected` — a setting refused at the encoder
  (a ``CommandRefused`` and a ``ValueError``); nothing was sent.

Inside: ``scpi`` (line grammar, both sides), ``codec`` (host decoders/encoder), ``wire``
(locks, retries, resync), ``monitor`` (heartbeats, status stream, listeners), ``verdicts``
(the unit's errors as typed exceptions), ``unit`` + ``physics`` (the firmware model),
``constants`` (the ICD's numbers).
"""
