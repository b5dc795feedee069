"""The screens of the guided session flow; each shows values and emits the therapist's intent."""
