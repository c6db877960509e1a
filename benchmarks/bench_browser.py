"""What a person waits for, in a real browser: the explorer against a bare Streamlit page.

    python benchmarks/bench_browser.py [--app PATH] [--against PATH] [--repeats N]
                                       [--json PATH|-]

Starts the explorer (``--app``, default the repo's app.py) and `floor_app.py` (one number
input, one small Plotly chart), each on a free localhost port, and drives both in headless
Debian Chromium (``/usr/bin/chromium``; never ``playwright install``) at 1400x1000. Each
repetition visits each app once more (warm server, warm browser cache) and then edits its
"Bits" number input (the explorer's weight section, key ``weight.bits``) to ``--edits``
distinct new values; the two apps alternate which goes first. It reports medians of:

- first plot: from navigation start to the first rendered ``.js-plotly-plot`` svg
  (the page's ``performance.now()`` clock; the first, cold visit is only a warm-up);
- edit to settled: from the Enter keydown to the last DOM mutation before the page is settled,
  i.e. no running indicator, no ``[data-stale=true]`` element, the run's ``script_finished``
  received, and no DOM mutation for 1 s (so the 1 s quiet window itself is not counted);

and, per edit, the websocket bytes received (per chart key), the Plotly chart count, the time
until ``script_finished`` arrives, and Chromium's main-thread time (CDP Performance metrics).
The ratios ours/floor of both medians are the figures that count (DESIGN.md section 5).
``--against PATH`` drives another explorer app.py (e.g. a variant or an older checkout) in
the floor's place, the same way: an interleaved A/B of two versions on one machine load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FLOOR_APP = HERE / "floor_app.py"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]
VIEWPORT = {"width": 1400, "height": 1000}
QUIET_MS = 1000
HEALTH_TIMEOUT_S = 120
WAIT_TIMEOUT_MS = 120_000
# New values for the Bits input, nearest to the usual default (8) first; the current value is
# skipped, so each edit changes it.
BIT_VALUES = [7, 6, 5, 4, 9, 10, 11, 12, 13, 14, 15, 16, 3, 2]
CDP_METRICS = ("ScriptDuration", "LayoutDuration", "RecalcStyleDuration", "TaskDuration")

# Installed before any page script: counts DOM mutations (and when the last one happened),
# notes when the first Plotly svg appears and when Enter is pressed.
INIT_JS = """
(() => {
  const b = window.__bench = {mutations: 0, last: performance.now(), firstPlot: null,
                              enter: null};
  const hasPlot = () => document.querySelector('.js-plotly-plot .main-svg') !== null;
  new MutationObserver(() => {
    b.mutations += 1;
    b.last = performance.now();
    if (b.firstPlot === null && hasPlot()) b.firstPlot = b.last;
  }).observe(document, {subtree: true, childList: true, attributes: true,
                        characterData: true});
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') b.enter = performance.now();
  }, true);
})();
"""

# Truthy (a summary) once the page is settled: nothing running, nothing stale, quiet for 1 s.
SETTLED_JS = """
(quietMs) => {
  const b = window.__bench;
  if (document.querySelector('[data-testid=stStatusWidgetRunningIcon]')) return false;
  if (document.querySelector('[data-stale=true]')) return false;
  if (performance.now() - b.last < quietMs) return false;
  return {last: b.last, enter: b.enter, firstPlot: b.firstPlot, mutations: b.mutations,
          charts: document.querySelectorAll('.js-plotly-plot').length};
}
"""


@dataclass
class Frame:
    at: float  # time.monotonic() when received
    size: int
    label: str  # "plotly:<key>", an element type, "script_finished", ...
    finished: bool = False  # a script_finished that ends the run (not "early for rerun")


@dataclass
class Edit:
    value: int
    settled_s: float  # Enter -> last DOM mutation before the settled page
    # Enter -> the run's script_finished frame as Playwright sees it (Chromium reports frames
    # from the page's renderer, so a busy main thread delays it too; not the server's time)
    script_finished_s: float
    ws_bytes: int
    ws_frames: int
    charts: int
    browser: dict[str, float]  # CDP main-thread seconds during the edit
    bytes_by_label: dict[str, int] = field(default_factory=dict)


@dataclass
class Visit:
    first_plot_s: float
    settled_s: float
    ws_bytes: int
    charts: int
    bytes_by_label: dict[str, int] = field(default_factory=dict)


@dataclass
class Target:
    name: str
    app: Path
    bits_selector: str
    url: str = ""
    server: subprocess.Popen | None = None
    log: Path | None = None
    cold: Visit | None = None
    visits: list[Visit] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)


# --- servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(target: Target, log_dir: Path) -> None:
    port = free_port()
    target.url = f"http://127.0.0.1:{port}"
    target.log = log_dir / f"{target.name}.log"
    with target.log.open("w") as log_file:
        target.server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(target.app),
             "--server.headless", "true", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=target.app.parent, stdout=log_file, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_healthy(target: Target, deadline: float) -> None:
    while time.monotonic() < deadline:
        if target.server.poll() is not None:
            raise RuntimeError(f"{target.name}: streamlit exited with "
                               f"{target.server.returncode}:\n{target.log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(
                f"{target.url}/_stcore/health", timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.25)
    raise TimeoutError(f"{target.name}: not healthy after {HEALTH_TIMEOUT_S} s:\n"
                       f"{target.log.read_text()[-3000:]}")


def stop_server(target: Target) -> None:
    if target.server is None or target.server.poll() is not None:
        return
    target.server.terminate()
    try:
        target.server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        target.server.kill()
        target.server.wait(timeout=10)


# --- websocket accounting ----------------------------------------------------------------------


def describe(payload: bytes) -> tuple[str, bool]:
    """A ForwardMsg's label (what it carries) and whether it ends a full script run."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    msg = ForwardMsg()
    try:
        msg.ParseFromString(payload)
    except Exception:  # noqa: BLE001 - an unknown frame is still counted
        return "undecoded", False
    kind = msg.WhichOneof("type") or "empty"
    if kind == "script_finished":
        early = msg.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN
        return kind, not early
    if kind != "delta":
        return kind, False
    delta_kind = msg.delta.WhichOneof("type")
    if delta_kind != "new_element":
        return f"delta:{delta_kind}", False
    element = msg.delta.new_element
    element_kind = element.WhichOneof("type")
    if element_kind in ("plotly_chart", "bidi_component"):  # st.plotly_chart, live_chart
        parts = getattr(element, element_kind).id.split("-", 2)  # $$ID-<hash>-<user key>
        return f"plotly:{parts[2] if len(parts) == 3 else '?'}", False
    return element_kind or "element", False


class Recorder:
    """Every websocket frame the page receives, decoded as a Streamlit ForwardMsg."""

    def __init__(self, page) -> None:
        self.frames: list[Frame] = []
        page.on("websocket", self._on_websocket)

    def _on_websocket(self, ws) -> None:
        if ws.url.endswith("/_stcore/stream"):
            ws.on("framereceived", self._on_frame)

    def _on_frame(self, payload) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        label, finished = describe(data)
        self.frames.append(Frame(time.monotonic(), len(data), label, finished))

    def since(self, index: int) -> list[Frame]:
        return self.frames[index:]


def bytes_by_label(frames: list[Frame]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for frame in frames:
        out[frame.label] += frame.size
    return dict(out)


# --- browser ---------------------------------------------------------------------------------


def wait_settled(page, recorder: Recorder, start_index: int, deadline_s: float) -> dict:
    """Wait for the run's script_finished, then for a settled page; its summary."""
    deadline = time.monotonic() + deadline_s
    while not any(f.finished for f in recorder.since(start_index)):
        if time.monotonic() > deadline:
            raise TimeoutError("no script_finished after the edit")
        page.wait_for_timeout(20)  # lets Playwright deliver the websocket events
    left_ms = max(1000.0, (deadline - time.monotonic()) * 1000)
    handle = page.wait_for_function(SETTLED_JS, arg=QUIET_MS, polling=50, timeout=left_ms)
    return handle.json_value()


def cdp_metrics(cdp) -> dict[str, float]:
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return {name: metrics.get(name, 0.0) for name in CDP_METRICS}


def visit(context, target: Target, timeout_s: float):
    """Open the app in a new page; returns (page, recorder, cdp session, Visit)."""
    page = context.new_page()
    page.set_default_timeout(WAIT_TIMEOUT_MS)
    recorder = Recorder(page)
    cdp = context.new_cdp_session(page)
    cdp.send("Performance.enable")
    page.goto(target.url, wait_until="commit", timeout=timeout_s * 1000)
    page.wait_for_function("() => window.__bench && window.__bench.firstPlot !== null",
                           polling=50, timeout=timeout_s * 1000)
    summary = wait_settled(page, recorder, 0, timeout_s)
    frames = recorder.since(0)
    return page, recorder, cdp, Visit(
        first_plot_s=summary["firstPlot"] / 1000, settled_s=summary["last"] / 1000,
        ws_bytes=sum(f.size for f in frames), charts=summary["charts"],
        bytes_by_label=bytes_by_label(frames))


def edit_bits(page, recorder: Recorder, cdp, target: Target, value: int,
              timeout_s: float) -> Edit:
    box = page.locator(target.bits_selector).first
    box.click()
    box.fill(str(value))
    before = cdp_metrics(cdp)
    start_index = len(recorder.frames)
    pressed = time.monotonic()
    box.press("Enter")
    summary = wait_settled(page, recorder, start_index, timeout_s)
    after = cdp_metrics(cdp)
    frames = recorder.since(start_index)
    finished_at = next(f.at for f in frames if f.finished)
    if summary["enter"] is None:
        raise RuntimeError("the Enter keydown was not seen by the page")
    return Edit(value=value, settled_s=(summary["last"] - summary["enter"]) / 1000,
                script_finished_s=finished_at - pressed,
                ws_bytes=sum(f.size for f in frames), ws_frames=len(frames),
                charts=summary["charts"],
                browser={k: after[k] - before[k] for k in CDP_METRICS},
                bytes_by_label=bytes_by_label(frames))


def new_values(current: int, count: int, offset: int) -> list[int]:
    candidates = [v for v in BIT_VALUES if v != current]
    return [candidates[(offset + i) % len(candidates)] for i in range(count)]


def run_rep(context, target: Target, rep: int, edits: int, timeout_s: float) -> None:
    page, recorder, cdp, seen = visit(context, target, timeout_s)
    target.visits.append(seen)
    try:
        current = int(float(page.locator(target.bits_selector).first.input_value()))
        for value in new_values(current, edits, rep * edits):
            target.edits.append(edit_bits(page, recorder, cdp, target, value, timeout_s))
    finally:
        page.close()


# --- report ----------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(ours: Target, floor: Target) -> dict:
    def stats(t: Target) -> dict:
        labels: dict[str, list[int]] = defaultdict(list)
        for e in t.edits:
            for label, size in e.bytes_by_label.items():
                labels[label].append(size)
        return {
            "first_plot_s": med([v.first_plot_s for v in t.visits]),
            "load_settled_s": med([v.settled_s for v in t.visits]),
            "edit_settled_s": med([e.settled_s for e in t.edits]),
            "edit_script_finished_s": med([e.script_finished_s for e in t.edits]),
            "edit_ws_bytes": med([e.ws_bytes for e in t.edits]),
            "edit_charts": med([e.charts for e in t.edits]),
            "edit_browser_s": {k: med([e.browser[k] for e in t.edits]) for k in CDP_METRICS},
            "edit_bytes_by_label": {k: med(v) for k, v in sorted(
                labels.items(), key=lambda kv: -med(kv[1]))},
            "cold_first_plot_s": t.cold.first_plot_s if t.cold else None,
            "visit_ws_bytes": med([v.ws_bytes for v in t.visits]),
        }

    o, f = stats(ours), stats(floor)
    return {
        "ours": o, "floor": f,
        "ratio": {"first_plot": o["first_plot_s"] / f["first_plot_s"],
                  "edit_settled": o["edit_settled_s"] / f["edit_settled_s"]},
        "runs": {t.name: {"app": str(t.app), "visits": [asdict(v) for v in t.visits],
                          "edits": [asdict(e) for e in t.edits]} for t in (ours, floor)},
    }


def print_report(summary: dict, repeats: int, edits: int) -> None:
    o, f, r = summary["ours"], summary["floor"], summary["ratio"]
    print(f"\n### Browser: explorer vs bare Streamlit page (medians, {repeats} visits, "
          f"{repeats * edits} edits each, interleaved)\n")
    print("| measure | ours | floor | ours/floor |")
    print("|---|---|---|---|")
    print(f"| first plot, second visit | {o['first_plot_s']:.2f} s | {f['first_plot_s']:.2f} s "
          f"| {r['first_plot']:.2f}x |")
    print(f"| edit to settled page (Bits) | {o['edit_settled_s']:.2f} s | "
          f"{f['edit_settled_s']:.2f} s | {r['edit_settled']:.2f}x |")
    print(f"| edit: script_finished seen by the page | {o['edit_script_finished_s']:.2f} s | "
          f"{f['edit_script_finished_s']:.2f} s | |")
    for key in CDP_METRICS:
        print(f"| edit: Chromium {key} | {o['edit_browser_s'][key]:.2f} s | "
              f"{f['edit_browser_s'][key]:.2f} s | |")
    print(f"| edit: websocket bytes | {o['edit_ws_bytes'] / 1024:.0f} KiB | "
          f"{f['edit_ws_bytes'] / 1024:.1f} KiB | |")
    print(f"| edit: Plotly charts on page | {o['edit_charts']:.0f} | {f['edit_charts']:.0f} | |")
    print(f"| load (second visit) to settled | {o['load_settled_s']:.2f} s | "
          f"{f['load_settled_s']:.2f} s | |")
    print(f"| load: websocket bytes | {o['visit_ws_bytes'] / 1024:.0f} KiB | "
          f"{f['visit_ws_bytes'] / 1024:.1f} KiB | |")
    print("\nExplorer, websocket bytes per edit by message (median):\n")
    print("| message | KiB |")
    print("|---|---|")
    for label, size in o["edit_bytes_by_label"].items():
        if size >= 1024:
            print(f"| {label} | {size / 1024:.1f} |")
    print("\nper edit (ours):  " + ", ".join(
        f"{e['settled_s']:.2f}" for e in summary["runs"]["ours"]["edits"]))
    print("per edit (floor): " + ", ".join(
        f"{e['settled_s']:.2f}" for e in summary["runs"]["floor"]["edits"]), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", type=Path, default=REPO / "app.py",
                        help="the explorer's app.py (default: the repo's)")
    parser.add_argument("--against", type=Path, help="another explorer app.py in the floor's "
                        "place: an interleaved A/B of two versions")
    parser.add_argument("--repeats", type=int, default=3, help="visits per app (default 3)")
    parser.add_argument("--edits", type=int, default=4, help="Bits edits per visit (default 4)")
    parser.add_argument("--timeout", type=float, default=120,
                        help="seconds allowed for any one load or edit to settle")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON "
                        "('-' for stdout)")
    args = parser.parse_args(argv)

    ours = Target("ours", args.app.resolve(), ".st-key-weight-bits input")
    floor = (Target("floor", FLOOR_APP, ".st-key-bits input") if args.against is None
             else Target("floor", args.against.resolve(), ".st-key-weight-bits input"))
    with tempfile.TemporaryDirectory(prefix="bench_browser_") as log_dir:
        try:
            for target in (ours, floor):
                start_server(target, Path(log_dir))
            deadline = time.monotonic() + HEALTH_TIMEOUT_S
            for target in (ours, floor):
                wait_healthy(target, deadline)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    contexts = {t.name: browser.new_context(viewport=VIEWPORT)
                                for t in (ours, floor)}
                    for context in contexts.values():
                        context.add_init_script(INIT_JS)
                    for target in (ours, floor):  # cold visit: warms server and cache
                        page, _, _, target.cold = visit(contexts[target.name], target,
                                                        args.timeout)
                        page.close()
                    for rep in range(args.repeats):
                        order = (ours, floor) if rep % 2 == 0 else (floor, ours)
                        for target in order:
                            run_rep(contexts[target.name], target, rep, args.edits,
                                    args.timeout)
                        print(f"rep {rep + 1}/{args.repeats}: ours "
                              f"{ours.visits[-1].first_plot_s:.2f} s first plot, edits "
                              + ", ".join(f"{e.settled_s:.2f}" for e in
                                          ours.edits[-args.edits:])
                              + f" s; floor {floor.visits[-1].first_plot_s:.2f} s, edits "
                              + ", ".join(f"{e.settled_s:.2f}" for e in
                                          floor.edits[-args.edits:]) + " s", flush=True)
                finally:
                    browser.close()
        finally:
            for target in (ours, floor):
                stop_server(target)
            for target in (ours, floor):
                if target.log and "Traceback" in target.log.read_text():
                    print(f"WARNING: {target.name}'s server log has a traceback:\n"
                          f"{target.log.read_text()[-3000:]}", file=sys.stderr)
    summary = summarize(ours, floor)
    print_report(summary, args.repeats, args.edits)
    if args.json == "-":
        print(json.dumps(summary, indent=1))
    elif args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
