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
- :mod:`~device_drivers.epat.simulator` – the firmware side (:class:`EpatSimulator`);
- :mod:`~device_drivers.epat.server` – the simulator served over TCP or a pseudo-terminal;
- :mod:`~device_drivers.epat.driver` – the host side (:class:`EpatDriver`), a
  :class:`~device_drivers.interface.TherapyDevice`.
"""
