"""The therapist's Qt console: screens that show the session workflow and forward intent.

This is the only package that imports PySide6 widgets. It holds no safety logic: every decision
(may this arm? is this value allowed?) is the workflow's or the clinical rules'; the screens show
the verdicts and their reasons. Device I/O never runs on the GUI thread.
"""
