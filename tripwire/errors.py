"""The error tree every package raises from, so callers catch a branch, not a leaf.

    TripwireError
    ├── ManifestError              a user's manifest is wrong; .problems lists each one (exit 2)
    ├── ExpressionError            a path, condition, expression or template text is wrong
    ├── BusError                   the bus failed an operation
    │   └── BusUnavailableError    the bus cannot make an event durable right now (webhook: 503)
    ├── SecretError                a referenced secret (env var, file, Kubernetes Secret) is absent
    ├── SourceError                a gateway source failed; it is retried with backoff
    └── TriggerError               a trigger failed at one of its stages
        ├── PermanentTriggerError  retrying cannot help (4xx, bad template, policy rejected)
        └── TemporaryTriggerError  retrying may help (5xx, timeout, connection refused)

User errors (manifests, expressions) carry enough to point at the input: file, line, field path.
They are printed as one line each, never as a traceback.
"""

from __future__ import annotations

import dataclasses


class TripwireError(Exception):
    """Base of every error Tripwire raises on purpose."""


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one manifest, located as precisely as the input allows."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"


class ManifestError(TripwireError):
    """One or more problems in user manifests; nothing was started."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ExpressionError(TripwireError, ValueError):
    """A path, condition or template text that cannot be parsed.

    Subclasses ValueError so that pydantic validators turn it into a field error that keeps
    the field path; `position` is the 0-based character offset in `text` where parsing failed.
    """

    def __init__(self, message: str, *, text: str, position: int | None = None) -> None:
        self.text = text
        self.position = position
        self.reason = message
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"{message}{where} in {text!r}")


class BusError(TripwireError):
    """The bus failed an operation."""


class BusUnavailableError(BusError):
    """The bus cannot make an event durable right now; the caller should answer 503 or retry."""


class SecretError(TripwireError):
    """A secret reference cannot be resolved; the message names the reference, never the value."""


class SourceError(TripwireError):
    """A gateway source failed to listen or read; the runtime restarts it with backoff."""


class TriggerError(TripwireError):
    """A trigger failed at one of its stages (resolve, parameters, execute, policy)."""


class PermanentTriggerError(TriggerError):
    """Retrying cannot help: the request or template is wrong, or the policy rejected the result."""


class TemporaryTriggerError(TriggerError):
    """Retrying may help; `delay` is a server-suggested wait in seconds (Retry-After), if any."""

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        self.delay = delay
        super().__init__(message)
