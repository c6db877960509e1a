"""Soak test: 200 seeded random edits through one AppTest session of app.py.

The edits are drawn from ``random.Random(0)``, so a failure names a step that reproduces:
field widgets, valid YAML edits and invalid ones (garbage, tabs, an unknown observer, bits 99,
a ``!!python/object`` tag, an alias), presets, sample-data settings, the activation toggle, tab
switches, and the Compare tab's buttons and editors while it is open. Each variant (widget,
kind of invalid YAML, data setting, tab, Compare button) is dealt from a shuffled deck, so all
of them run. The layer is kept small (at most 64 x 64, batches of at most 64 rows): the 200
reruns take about 40 s on two cores.

After every rerun: no exception and no "Traceback" in any element of the page; an invalid edit
keeps exactly the typed text and shows that text's own error. At the end: the session state has
not grown with the edits, and every cache is within its ``max_entries`` (each ``BoundedLRU`` too).
"""

from __future__ import annotations

import math
import random
import re
import time
from collections import Counter
from pathlib import Path

import pytest
from streamlit.runtime.caching.cache_resource_api import _resource_caches
from streamlit.testing.v1 import AppTest

from explorer.compare import runs as C
from explorer.compare import state as CS
from explorer.core import cache
from explorer.core import state as S
from explorer.core.formatting import format_config_error
from explorer.core.yaml_edit import set_field
from explorer.data import synthetic
from explorer.single import results
from explorer.single import state as SINGLE
from explorer.single.panel import RESULT_VIEWS
from quantlib.config_loader import load_config_from_yaml
from quantlib.quant_config import CALIBRATION_MODES, OBSERVER_TYPES, QUANTIZATION_METHODS

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
TIMEOUT = 180
EDITS = 200
SMALL_LAYER = {"in_features": 64, "out_features": 64, "num_batches": 2, "batch_size": 32}
TABS = ("Single layer", "Whole model", "Compare", "Teach")
SEEDS = (0, 1, 2)  # each seed is a digits MLP to train (~3 s) once the Whole model tab opens
KEY_SLACK = 6  # keys the edits may add over the fullest warm-up state (e.g. teach channels)

# How often each kind of edit is drawn (compare edits only while the Compare tab is open).
WEIGHTS = {"widget": 30, "yaml valid": 10, "yaml invalid": 16, "preset": 5, "data": 16,
           "activation": 5, "tab": 12, "compare": 24}
FIELDS = ("observer_type", "bits", "signed", "quantization_method", "calibration_mode",
          "percentile_alpha", "kl_bins")
NEEDS_OBSERVER = {"percentile_alpha": "PercentileObserver", "kl_bins": "KLObserver"}
INVALID_KINDS = ("garbage", "tabs", "unknown observer", "bits 99", "python tag", "alias")
DATA_FIELDS = ("seed", "weight_source", "input_source", "num_batches", "batch_size",
               "in_features", "out_features")
COMPARE_KINDS = ("classic", "add", "remove", "reset", "edit valid", "edit invalid")
BITS = re.compile(r"bits:\s*\d+")
OBSERVER = re.compile(r"observer_type:\s*\w+")


@pytest.fixture
def fresh_caches(tmp_path, monkeypatch):
    """Empty caches before and after; the digits MLPs are trained into a private cache home."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    cache.clear_all()
    yield
    cache.clear_all()


# --- page checks ------------------------------------------------------------------------------


def page_nodes(at: AppTest):
    for root in (at.main, at.sidebar):
        yield from root


def check_page(at: AppTest, step: str) -> None:
    """No exception, and no element anywhere on the page that holds a traceback."""
    assert not at.exception, (step, [e.value for e in at.exception])
    for node in page_nodes(at):
        proto = getattr(node, "proto", None)
        if proto is not None and b"Traceback" in proto.SerializeToString():
            raise AssertionError(f"{step}: a traceback on the page in {node.type}: {proto}")


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def widget_keys(widgets) -> set[str]:
    return {w.key for w in widgets if w.key}


# --- the session --------------------------------------------------------------------------------


class Soak:
    """One AppTest session and the random edits applied to it."""

    def __init__(self, at: AppTest, rng: random.Random, marker: Path) -> None:
        self.at, self.rng, self.marker = at, rng, marker
        self.tab = TABS[0]
        self.counts: Counter[str] = Counter()  # one count per rerun, by what it did
        self.decks: dict[str, list] = {}
        self.keys = [self.key_counts()]  # after every rerun
        self.step = "start"
        self.good = {section: self.text(section) for section in ("weight", "outputs")}
        self.good["activation"] = S.DEFAULT_ACTIVATION_YAML
        self.good_document = (S.PRESET_DIR / S.DEFAULT_PRESET).read_text(encoding="utf-8")

    # helpers

    @property
    def state(self):
        return self.at.session_state

    def text(self, section: str) -> str:
        return self.state[S.store_key(section)]

    def run(self) -> None:
        self.at.run()
        check_page(self.at, self.step)
        self.keys.append(self.key_counts())

    def sections(self) -> tuple[str, ...]:
        return S.enabled_sections(self.state)

    def open_editor(self, section: str) -> None:
        """Show ``section``'s config editor (only the chosen one is drawn), as a click
        before the edit (a rerun that is not counted as an edit)."""
        if S.text_key(section) not in widget_keys(self.at.text_area):
            self.at.segmented_control(key=SINGLE.EDITOR_SECTION).set_value(section).run()
            check_page(self.at, self.step)

    def key_counts(self) -> tuple[int, int]:
        """(session-state keys the app sees, every key including keyless widgets' ids)."""
        internal = self.at._session_state._state._keys()  # Streamlit 1.67 (pinned)
        return len(self.state), len(internal)

    def draw(self) -> str:
        """The next kind of edit, drawn by `WEIGHTS`."""
        kinds = [k for k in WEIGHTS if k != "compare" or self.tab == "Compare"]
        return self.rng.choices(kinds, [WEIGHTS[k] for k in kinds])[0]

    def deal(self, name: str, items) -> object:
        """The next of ``items`` from a shuffled deck, reshuffled when empty: the order is
        random, but every item comes up once per round (so each variant surely runs)."""
        deck = self.decks.setdefault(name, [])
        if not deck:
            deck.extend(items)
            self.rng.shuffle(deck)
        return deck.pop()

    def left(self) -> int:
        return EDITS - sum(self.counts.values())

    # edits

    def widget(self) -> None:
        section = self.rng.choice(self.sections())
        field = self.deal("widget", FIELDS)
        self.open_editor(section)
        observer = self.state[S.field_key(section, "observer_type")]
        if field in NEEDS_OBSERVER and observer != NEEDS_OBSERVER[field]:
            # Its widget is disabled: pick the observer that uses it first, as a user would.
            self.set_widget(section, "observer_type", NEEDS_OBSERVER[field])
            if not self.left():
                return
            self.step += ";"
        if field in ("bits", "signed") and self.state[S.field_key(section, "format")] != "int":
            # A float format derives bits and signed (widgets disabled): back to integers first.
            self.set_widget(section, "format", "int")
            if not self.left():
                return
            self.step += ";"
        self.set_widget(section, field)

    def set_widget(self, section: str, field: str, value=None) -> None:
        if value is None:
            value = {
                "observer_type": lambda: self.rng.choice(OBSERVER_TYPES),
                "bits": lambda: self.rng.randint(2, 16),
                "signed": lambda: not self.state[S.field_key(section, "signed")],
                "quantization_method": lambda: self.rng.choice(QUANTIZATION_METHODS),
                "calibration_mode": lambda: self.rng.choice(CALIBRATION_MODES),
                "percentile_alpha": lambda: self.rng.choice((0.9, 0.99, 0.999, 0.9995, 1.0)),
                "kl_bins": lambda: self.rng.choice((16, 128, 512, 2048)),
            }[field]()
        self.step += f" {section}.{field} = {value!r}"
        self.open_editor(section)
        key = S.field_key(section, field)
        widget = (self.at.toggle(key=key) if field == "signed" else
                  self.at.number_input(key=key) if field in ("bits", "percentile_alpha",
                                                             "kl_bins")
                  else self.at.selectbox(key=key))
        assert not widget.disabled, self.step
        before, moved = self.text(section), widget.value != value
        widget.set_value(value)
        self.run()
        self.counts[f"widget {field}"] += 1
        after = self.text(section)
        assert self.at.text_area(key=S.text_key(section)).value == after, self.step
        config = S.parse_text(after, section)[0]
        if config is not None and field != "format":  # valid text and widgets agree
            assert S.field_values(config)[field] == pytest.approx(value), self.step
        elif moved and after == before:  # broken YAML: kept as typed, and the user is told
            # unless the text already said so (a widget shows the last valid value)
            told = any("fix the YAML error first" in w.value for w in self.at.warning)
            assert told or set_field(before, S.FIELD_PATHS[field], value) == before, self.step

    def yaml_valid(self) -> None:
        section = self.rng.choice(self.sections())
        base = self.text(section)
        if S.parse_text(base, section)[0] is None or not BITS.search(base):
            base = self.good[section]
        bits = self.rng.randint(2, 16)
        text = BITS.sub(f"bits: {bits}", base, count=1)
        if self.rng.random() < 0.5:
            text = f"# soak edit {self.step.split()[1]}\n{text}"
        assert S.parse_text(text, section)[0] is not None, text
        self.step += f" {section} YAML bits: {bits}"
        self.type_yaml(section, text)
        self.counts["yaml valid"] += 1
        title = S.SECTION_TITLES[section]
        assert not [e for e in errors(self.at) if e.startswith(f"{title} config error")], \
            (self.step, errors(self.at))
        assert self.state[S.field_key(section, "bits")] == bits, self.step

    def invalid_text(self, kind: str, base: str, document: bool) -> str:
        """Invalid YAML of ``kind``: a section body, or a whole document for Compare."""
        def wrap(body: str) -> str:
            if not document:
                return body + "\n"
            return "weight:\n" + "".join(f"  {line}\n" for line in body.splitlines())

        if kind == "garbage":
            return "".join(self.rng.choice(":{}[]-&*!|>'\"%@` \n#xy0") for _ in range(40))
        if kind == "tabs":
            return wrap("calibration_mode: layer_wise\nbit_type:") + "\tbits: 4\n"  # a tab indent
        if kind == "unknown observer":
            return OBSERVER.sub("observer_type: MinMaxObserverr", base, count=1) \
                if OBSERVER.search(base) else base + wrap("observer_type: MinMaxObserverr")
        if kind == "bits 99":
            return BITS.sub("bits: 99", base, count=1)
        if kind == "python tag":  # would create the marker folder if it were ever run
            return wrap(f"observer_type: !!python/object/apply:os.mkdir ['{self.marker}']")
        return wrap("observer_type: &obs MinmaxObserver\nquantization_method: *obs")  # alias

    def yaml_invalid(self) -> None:
        section = self.rng.choice(self.sections())
        kind = self.deal("yaml invalid", INVALID_KINDS)
        base = self.good[section]
        for _ in range(100):  # random garbage can be valid YAML: draw again
            text = self.invalid_text(kind, base, document=False)
            error = S.parse_text(text, section)[1]
            if error is not None:
                break
        assert error is not None, (kind, text)
        self.step += f" {section} YAML invalid ({kind})"
        self.type_yaml(section, text)
        self.counts[f"yaml invalid: {kind}"] += 1
        # The typed text is kept exactly, and its own error (field, line, why) is shown.
        assert self.at.text_area(key=S.text_key(section)).value == text, self.step
        assert self.text(section) == text, self.step
        message = f"{S.SECTION_TITLES[section]} config error — {format_config_error(error)}"
        assert message in errors(self.at), (self.step, message, errors(self.at))
        assert any("Stale results" in w.value for w in self.at.warning), self.step

    def type_yaml(self, section: str, text: str) -> None:
        self.open_editor(section)
        self.at.text_area(key=S.text_key(section)).input(text)
        self.run()

    def preset(self) -> None:
        name = self.rng.choice([p for p in S.preset_names() if p != self.state[S.PRESET]])
        self.step += f" preset {name}"
        self.at.selectbox(key=S.PRESET).set_value(name)
        self.run()
        self.counts["preset"] += 1
        assert f"Loaded preset {name}." in [s.value for s in self.at.success], self.step
        configs = load_config_from_yaml(S.PRESET_DIR / name)
        assert self.state[S.ACT_ENABLED] is (configs["activation"] is not None), self.step
        for section in self.sections():
            config = S.parse_text(self.text(section), section)[0]
            assert config == configs[S.RESULT_KEYS[section]], (self.step, section)

    def data(self) -> None:
        field = self.deal("data", DATA_FIELDS)
        value = {
            "seed": lambda: self.rng.choice(SEEDS),
            "weight_source": lambda: self.rng.choice(synthetic.WEIGHT_SOURCES),
            "input_source": lambda: self.rng.choice(synthetic.INPUT_SOURCES),
            "num_batches": lambda: self.rng.randint(1, 4),
            "batch_size": lambda: self.rng.randint(8, 64),
            "in_features": lambda: self.rng.randint(8, 64),
            "out_features": lambda: self.rng.randint(8, 64),
        }[field]()
        self.step += f" data.{field} = {value!r}"
        key = S.data_key(field)
        widget = (self.at.selectbox(key=key) if field.endswith("_source")
                  else self.at.number_input(key=key))
        widget.set_value(value)
        self.run()
        self.counts[f"data {field}"] += 1
        assert self.state[key] == value, self.step

    def activation(self) -> None:
        enable = not self.state[S.ACT_ENABLED]
        self.step += f" activation {'on' if enable else 'off'}"
        kept = self.text("activation")
        self.at.toggle(key=S.ACT_ENABLED).set_value(enable)
        self.run()
        self.counts["activation toggle"] += 1
        sections = self.at.segmented_control(key=SINGLE.EDITOR_SECTION).options
        assert (SINGLE.editor_section_label("activation") in sections) is enable, self.step
        assert self.text("activation") == kept, self.step  # its text survives the toggle
        if enable:
            self.open_editor("activation")
            assert self.at.text_area(key=S.text_key("activation")).value == kept, self.step

    def switch_tab(self, tab: str | None = None) -> None:
        while tab is None or tab == self.tab:
            tab = self.deal("tab", TABS)
        self.step += f" tab {tab}"
        self.state[S.TABS] = tab  # AppTest cannot click a tab; the app reads this key
        self.tab = tab
        self.run()
        self.counts[f"tab {tab}"] += 1
        subheaders = [s.value for s in self.at.subheader]
        opened = {
            "Compare": CS.compare_key(CS.COMPARE_YAML, 0) in widget_keys(self.at.text_area),
            "Teach": any(h.startswith("5 ·") for h in subheaders),
            "Whole model": any(h.startswith("Whole model:") for h in subheaders),
        }
        assert opened == {name: name == tab for name in opened}, (self.step, opened)

    def compare(self) -> None:
        kind = self.deal("compare", COMPARE_KINDS)
        count = len(self.state[CS.COMPARE_ENTRIES])
        if kind == "add" and count == C.MAX_CONFIGS:
            kind = "remove"
        if kind == "remove" and count == C.MIN_CONFIGS:
            kind = "add"
        if kind.startswith("edit"):
            self.compare_edit(kind == "edit valid", count)
            return
        index = self.rng.randrange(count)
        key = {"classic": CS.COMPARE_CLASSIC, "add": CS.COMPARE_ADD, "reset": CS.COMPARE_RESET,
               "remove": CS.compare_key(CS.COMPARE_REMOVE, index)}[kind]
        self.step += f" compare {kind}" + (f" {index}" if kind == "remove" else "")
        valid = all(S.parse_text(self.text(s), s)[0] is not None for s in self.sections())
        self.at.button(key=key).click()
        self.run()
        self.counts[f"compare {kind}"] += 1
        names = [name for name, _ in self.state[CS.COMPARE_ENTRIES]]
        expected = {"add": count + 1, "remove": count - 1, "reset": 2,
                    "classic": 4 if valid else count}[kind]
        assert len(names) == expected, (self.step, names)
        if kind == "classic" and valid:
            assert names == ["MinMax", "Percentile", "OMSE", "KL"], self.step

    def compare_edit(self, valid: bool, count: int) -> None:
        index = self.rng.randrange(count)
        name, base = self.state[CS.COMPARE_ENTRIES][index]
        if C.parse_entry(name, base).configs is None or not BITS.search(base):
            base = self.good_document
        if valid:
            kind = "valid"
            text = BITS.sub(f"bits: {self.rng.randint(2, 16)}", base, count=1)
        else:
            kind = self.deal("compare invalid", INVALID_KINDS)
            for _ in range(100):  # random garbage can be valid YAML: draw again
                text = self.invalid_text(kind, base, document=True)
                if C.parse_entry(name, text).error is not None:
                    break
        entry = C.parse_entry(name, text)
        assert (entry.error is None) is valid, (kind, text)
        self.step += f" compare edit {index} ({kind})"
        key = CS.compare_key(CS.COMPARE_YAML, index)
        self.at.text_area(key=key).input(text)
        self.run()
        self.counts[f"compare edit {'valid' if valid else 'invalid: ' + kind}"] += 1
        assert self.at.text_area(key=key).value == text, self.step
        assert self.state[CS.COMPARE_ENTRIES][index][1] == text, self.step
        if not valid:
            message = format_config_error(entry.error)
            assert any(message in e for e in errors(self.at)), (self.step, errors(self.at))


# --- caches -------------------------------------------------------------------------------------


def resource_caches() -> dict[str, tuple[int, float]]:
    """Every cache of the process: name -> (entries, max_entries). The explorer's stores come
    from `explorer.core.cache.stores`; any ``st.cache_resource`` cache is read from Streamlit
    1.67's (pinned) registry too, so a cache added outside the stores is checked as well."""
    found = {name: (len(store), store.max_entries) for name, store in cache.stores().items()}
    with _resource_caches._caches_lock:
        caches = [c for by_key in _resource_caches._function_caches.values()
                  for c in by_key.values()]
    for resource_cache in caches:
        found[resource_cache.display_name] = (len(resource_cache._mem_cache),
                                              resource_cache.max_entries)
    return found


# --- the test -----------------------------------------------------------------------------------


def test_two_hundred_random_edits_never_crash_and_stay_bounded(fresh_caches, tmp_path):
    started = time.perf_counter()
    rng = random.Random(0)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for name, value in SMALL_LAYER.items():
        at.session_state[S.data_key(name)] = value
    at.run()
    check_page(at, "first run")
    assert [tab.label for tab in at.tabs] == list(TABS)
    editors = at.segmented_control(key=SINGLE.EDITOR_SECTION).options
    assert editors == ["Weight config (`weight:`)", "Output config (`outputs:`)"]
    assert at.segmented_control(key=SINGLE.RESULT_VIEW).options == list(RESULT_VIEWS)
    soak = Soak(at, rng, tmp_path / "pwned")

    # Warm-up: every tab once with the activation section on and four compare configs, the
    # fullest the session state gets; the edits below must not grow it past that.
    soak.step = "warm-up"
    soak.at.toggle(key=S.ACT_ENABLED).set_value(True)
    soak.run()
    for tab in ("Whole model", "Compare"):
        soak.switch_tab(tab)
    for _ in range(2):
        soak.at.button(key=CS.COMPARE_ADD).click()
        soak.run()
    for tab in ("Teach", "Single layer"):
        soak.switch_tab(tab)
    soak.at.toggle(key=S.ACT_ENABLED).set_value(False)
    soak.run()
    soak.counts.clear()
    warm, soak.keys = soak.keys, []
    warm_up_s = time.perf_counter() - started

    while soak.left():
        kind = soak.draw()
        soak.step = f"edit {EDITS - soak.left()}:"
        {"widget": soak.widget, "yaml valid": soak.yaml_valid,
         "yaml invalid": soak.yaml_invalid, "preset": soak.preset, "data": soak.data,
         "activation": soak.activation, "tab": soak.switch_tab,
         "compare": soak.compare}[kind]()
    seen = soak.keys
    elapsed = time.perf_counter() - started

    print(f"\nsoak: {EDITS} edits in {elapsed:.1f} s (warm-up {warm_up_s:.1f} s)")
    for what, count in sorted(soak.counts.items()):
        print(f"  {count:3d}  {what}")

    # Every kind of edit ran (each variant comes up once per round of its deck).
    assert sum(soak.counts.values()) == len(seen) == EDITS
    expected = ([f"widget {f}" for f in FIELDS] + [f"yaml invalid: {k}" for k in INVALID_KINDS]
                + [f"data {f}" for f in DATA_FIELDS] + [f"tab {t}" for t in TABS]
                + [f"compare {k}" for k in ("classic", "add", "remove", "reset")]
                + ["yaml valid", "preset", "activation toggle", "compare edit valid"])
    assert not [k for k in expected if not soak.counts[k]], soak.counts
    assert any(k.startswith("compare edit invalid") for k in soak.counts), soak.counts
    assert not soak.marker.exists()  # no YAML tag ever ran code

    # No per-edit growth of the session state.
    public, internal = (max(c[i] for c in warm) for i in (0, 1))
    print(f"  session-state keys: warm-up max {public} ({internal} with widget ids), "
          f"soak max {max(c[0] for c in seen)} ({max(c[1] for c in seen)}), "
          f"end {seen[-1][0]} ({seen[-1][1]})")
    assert max(c[0] for c in seen) <= public + KEY_SLACK, (public, seen)
    assert max(c[1] for c in seen) <= internal + KEY_SLACK, (internal, seen)

    # Every cache is bounded and within its bound; the LRU stores held their caps.
    caches = resource_caches()
    print("  caches: " + ", ".join(f"{name} {n}/{cap}"
                                   for name, (n, cap) in sorted(caches.items())))
    for name, (entries, cap) in caches.items():
        assert math.isfinite(cap) and entries <= cap, (name, cap, entries)
    assert caches["single.results"] == (results.RESULT_ENTRIES, results.RESULT_ENTRIES), caches
    assert elapsed < 300, f"the soak took {elapsed:.0f} s"
