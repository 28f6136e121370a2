"""The application layer: the `tripwire` command, the runtime that wires one process, the
controller, and the commands' helpers (manifest loading, CRD and reference generation, explain).

Everything here may import every other layer; nothing below imports it (import-linter, see
`docs/architecture.md`).
"""
