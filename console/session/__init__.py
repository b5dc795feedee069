"""The treatment-session workflow: plain Python, shared by the GUI, the CLI and the tests."""
