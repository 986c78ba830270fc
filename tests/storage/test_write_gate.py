"""The write gate: one writer of an event loop at a time, taken at once whenever it is free."""

from __future__ import annotations

import asyncio
import random

import pytest

from storage.db import WriteGate


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_free_gate_is_taken_at_once_while_a_woken_waiter_has_not_resumed():
    # asyncio.Lock would queue the newcomer behind the woken waiter, one turn per loop
    # iteration: under steady writes such a queue never drains (docs/performance.md, change 24).
    gate = WriteGate()
    order: list[str] = []
    await gate.acquire()

    async def waiter() -> None:
        await gate.acquire()
        order.append("waiter")
        gate.release()

    waiting = asyncio.create_task(waiter())
    await _settle()
    gate.release()  # wakes the waiter, which resumes on a later loop iteration
    await gate.acquire()  # free: taken without waiting for the waiter's turn
    order.append("newcomer")
    await _settle()  # the waiter resumes, finds the gate taken, and waits again
    assert gate.locked() and order == ["newcomer"]
    gate.release()
    await waiting
    assert order == ["newcomer", "waiter"]
    assert not gate.locked()


async def test_waiters_take_their_turns_in_order_and_a_woken_waiter_that_lost_keeps_its_place():
    gate = WriteGate()
    order: list[str] = []
    await gate.acquire()

    async def writer(name: str) -> None:
        await gate.acquire()
        order.append(name)
        await asyncio.sleep(0)  # holds across a suspension
        gate.release()

    tasks = [asyncio.create_task(writer(name)) for name in "abc"]
    await _settle()
    gate.release()
    await gate.acquire()  # taken before "a" resumes: "a" waits again, at the front
    await _settle()
    gate.release()
    await asyncio.gather(*tasks)
    assert order == ["a", "b", "c"]


async def test_a_cancelled_waiter_leaves_the_queue_and_a_woken_one_passes_its_turn_on():
    gate = WriteGate()
    await gate.acquire()
    gone = asyncio.create_task(gate.acquire())
    woken = asyncio.create_task(gate.acquire())
    last = asyncio.create_task(gate.acquire())
    await _settle()
    gone.cancel()
    await _settle()
    gate.release()  # wakes "woken" ("gone" is no longer waiting)
    woken.cancel()  # before it resumed: its turn goes to "last"
    with pytest.raises(asyncio.CancelledError):
        await woken
    with pytest.raises(asyncio.CancelledError):
        await gone
    await asyncio.wait_for(last, timeout=1)
    assert gate.locked()
    gate.release()
    assert not gate.locked()


async def test_never_two_holders():
    gate = WriteGate()
    rng = random.Random(7)
    holders = 0
    turns = 0

    async def writer() -> None:
        nonlocal holders, turns
        for _ in range(20):
            if rng.random() < 0.5:
                await asyncio.sleep(0)
            try:
                await asyncio.wait_for(gate.acquire(), timeout=rng.choice([0.0005, 1]))
            except TimeoutError:
                continue
            holders += 1
            assert holders == 1
            for _ in range(rng.randrange(3)):
                await asyncio.sleep(0)  # some holders suspend, most do not
            holders -= 1
            turns += 1
            gate.release()

    await asyncio.gather(*(writer() for _ in range(30)))
    assert turns > 0 and not gate.locked()
