"""DBOS's background threads (queue polling, scheduler) jitter their sleeps with the global
`random`. Hypothesis refuses a draw during which the global random state changed, so while the
app under fuzz runs, those threads get a generator of their own."""

from __future__ import annotations

import random

from dbos import _queue, _scheduler, _sys_db, _workflow_commands

for _module in (_queue, _scheduler, _sys_db, _workflow_commands):
    _module.random = random.Random()  # type: ignore[attr-defined]
