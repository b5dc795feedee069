"""The radial shockwave (EPAT) unit: serial frame codec, firmware simulator and host driver.

The wire contract is ``shared/icd/epat-serial.md`` (protocol 1). Layout:

- :mod:`~device_drivers.epat.constants` – command codes, states, fault bits, NAK codes, the
  reference unit and the ICD's timings;
- :mod:`~device_drivers.epat.codec` – CRC-16/CCITT-FALSE, frame encoding (range-checked) and the
  streaming, resynchronising :class:`~device_drivers.epat.codec.FrameDecoder`;
- :mod:`~device_drivers.epat.payloads` – payload layouts (status block, HELLO, applicator,
  events) packed and unpacked with length and range checks;
- :mod:`~device_drivers.epat.units` – exact conversions between the unit's integer units
  (cbar, dhz, dC) and ``Decimal`` bar/Hz/°C;
- :mod:`~device_drivers.epat.firmware` – the simulated unit's firmware (state machine, commands,
  timed behaviour) as plain code, with :mod:`~device_drivers.epat.handpiece` (thermal model,
  applicator) and :mod:`~device_drivers.epat.eventlog`;
- :mod:`~device_drivers.epat.simulator` – :class:`EpatSimulator`: the firmware on a simulated
  clock, thread-safe, with fault injection;
- :mod:`~device_drivers.epat.hostlink` – a host connection's end inside the unit (framing rules);
- :mod:`~device_drivers.epat.server` – the simulator served over TCP or a pseudo-terminal;
- :mod:`~device_drivers.epat.channel` – the host's frame channel (reader thread, SEQ matching,
  safe retries, ESTOP priority);
- :mod:`~device_drivers.epat.translate` – wire values to the common device values and errors;
- :mod:`~device_drivers.epat.limits` – HELLO (identity, envelope) and the encoder-side check;
- :mod:`~device_drivers.epat.driver` – the host side (:class:`EpatDriver`), a
  :class:`~device_drivers.interface.TherapyDevice`, plus ``raw_command`` and ``link_stats``
  for the service console.
"""
