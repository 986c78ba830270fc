"""The app factory the conformance tests serve: ``create_app`` with the faults they name.

``RECOUP_TEST_FAULTS`` (not ``RECOUP_FAULTS``) so that the faults are applied once, whether or
not ``server/app.py`` installs the middleware itself.
"""

from __future__ import annotations

from starlette.types import ASGIApp

from server.app import create_app
from server.faults import faults_from_env, wrap_with_faults

FAULTS_ENV = "RECOUP_TEST_FAULTS"


def create() -> ASGIApp:
    return wrap_with_faults(create_app(), faults_from_env(variable=FAULTS_ENV))
