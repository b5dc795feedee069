"""The clinical record store and its tamper-evident audit trail. No Qt, no device I/O."""
