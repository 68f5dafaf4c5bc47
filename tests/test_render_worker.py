"""What the build sends a fiche worker, and what a page leaves behind in it."""

from __future__ import annotations

import gc
import pickle

from catalogue.render import FicheEntry, _fiche_job
from factories import action, make_formation
from test_render import entry_of, site


def test_a_fiche_from_what_the_workers_get_is_the_same_page() -> None:
    """The build sends a worker a FicheEntry, not the Entry: the page is the same, also after pickling."""
    for formation in (make_formation(), make_formation(actions=[action(lieux=[])])):
        entry = entry_of(formation)
        path, spare, sent, lean = pickle.loads(pickle.dumps(_fiche_job("x.html", None, formation, entry)))
        assert type(lean) is FicheEntry and lean.ref == entry.ref
        assert site().fiche(sent, lean) == site().fiche(formation, entry)


def test_a_page_leaves_no_garbage_cycle() -> None:
    """A worker runs the collector only now and then (render.COLLECT_EVERY): a page, its formation and its
    context are freed as soon as it is written."""
    pages = site()
    formation = make_formation(actions=[action(), action(numero="15_A2", lieux=[])])
    entry = entry_of(formation)
    pages.fiche(formation, entry)  # templates loaded, caches filled
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(3):
            pages.fiche(*pickle.loads(pickle.dumps((formation, FicheEntry.of(entry)))))
        assert gc.collect() == 0
    finally:
        if enabled:
            gc.enable()
