"""Ids sort in creation order, even many within one millisecond and across threads."""

from __future__ import annotations

import threading

from conveyor._internal.ids import new_id


def test_ids_made_in_one_millisecond_still_sort_in_creation_order() -> None:
    ids = [new_id() for _ in range(5000)]  # thousands per millisecond on this machine
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 26 for i in ids)


def test_ids_from_many_threads_are_unique() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        out.extend(new_id() for _ in range(2000))

    threads = [threading.Thread(target=make, args=(out,)) for out in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for out in made for i in out]
    assert len(set(every)) == len(every)
    assert all(out == sorted(out) for out in made)
