"""A conformance kit for the Recoup Sessions & Chat API: point it at any implementation.

``python -m conformance --base-url URL --api-key KEY`` (or ``recoup-api conformance``) runs
Schemathesis over the contract, behavioural scenarios the schema cannot express, and checks every
response it receives against the contract with openapi-core. See ``docs/conformance.md``.
"""
