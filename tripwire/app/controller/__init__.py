"""`tripwire controller`: Gateways and Sensors as Kubernetes custom resources.

The controller watches the custom resources, validates them with the same models as
`tripwire run`, runs them through an `Executor` (in-process now: one `Runtime` per namespace;
later one Deployment per object), writes their `status`, and keeps a Lease so that only one of
several replicas runs anything.

    reconciling   watch -> validate -> executor.apply -> status
    executing     the Executor seam and its in-process implementation
    status        pure: what the status subresource should say
    leading       Lease-based leader election (pure decisions + the API loop)
    secrets       Secret references resolved through the API
    running       the process: wiring, health endpoint, shutdown order
"""
