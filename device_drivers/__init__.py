"""Transports, device drivers and device simulators. No Qt, no database."""
