"""Random ids from a pool of OS randomness: each byte handed out once, in every process."""

from __future__ import annotations

import os

from gatekeeper.randomids import RandomIds


def test_ids_have_the_asked_size_and_never_repeat_across_refills() -> None:
    ids = RandomIds()
    taken = [ids.hex(24) for _ in range(2000)]  # ~12 refills of the 4 KiB pool
    assert all(len(one) == 48 and int(one, 16) >= 0 for one in taken)
    assert len(set(taken)) == len(taken)


def test_mixed_sizes_take_consecutive_fresh_bytes() -> None:
    ids = RandomIds()
    taken = [ids.hex(size) for _ in range(400) for size in (8, 12, 24)]
    assert [len(one) for one in taken[:3]] == [16, 24, 48]
    assert len(set(taken)) == len(taken)


def test_a_forked_child_does_not_hand_out_its_parents_bytes() -> None:
    """gunicorn --preload forks workers after the app (and its pool) exists."""
    ids = RandomIds()
    ids.hex(8)  # the pool is filled before the fork
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(writer, ids.hex(8).encode())
        os._exit(0)
    os.close(writer)
    os.waitpid(child, 0)
    from_child = os.read(reader, 64).decode()
    os.close(reader)
    assert len(from_child) == 16
    assert from_child != ids.hex(8)
