"""One transport per link kind: serial bytes (pyserial URLs) and VISA message lines (pyvisa)."""

from device_drivers.transports.serial_link import SerialLink
from device_drivers.transports.visa_link import VisaLink

__all__ = ["SerialLink", "VisaLink"]
