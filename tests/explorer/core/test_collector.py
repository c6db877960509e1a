"""``explorer.core.collector``: the imports' objects leave the collector's full passes."""

import gc
import weakref

import torch

from explorer.core.collector import freeze_imports


def test_freeze_imports_freezes_what_is_alive_once_and_later_objects_stay_collectable():
    frozen = freeze_imports()
    assert frozen == gc.get_freeze_count() >= 50_000  # torch alone is tens of thousands
    assert not any(obj is torch.nn.Module for obj in gc.get_objects(generation=2))
    assert freeze_imports() == frozen  # once per process

    class Cycle:
        pass

    cycle = Cycle()
    cycle.self = cycle  # garbage only the collector can free
    alive = weakref.ref(cycle)
    del cycle
    gc.collect()
    assert alive() is None
