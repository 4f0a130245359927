"""End to end: the real `streamlit run dashboard/app.py` in headless Chromium.

Opens the token view, switches every tab, launches a 3-step run from the page and sees it finish
and appear in the curves. On the committed sample runs: the first screen (the comparison) at
1440×900 and 1024×768, the hover card, the play control and a shared URL.
Screenshots go to artifacts/ (gitignored) for a human to look at.
The launch uses the real CLI when a prepared model exists (`$ATWU_MODEL_DIR`, default
sample_data/models/full, with its benchmark two folders up), otherwise the stand-in CLI of
tests/fake_runs.py, so the page path is always exercised.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fake_runs import write_fake_benchmark, write_fake_runs

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[1]
SAMPLE_RUNS = REPO / "sample_data" / "runs"
FIRST_SCREEN_ROWS = [
    "atwu",
    "atwu_frozen",
    "oracle_saturated",
    "wga",
    "satimp",
    "seul",
    "etw",
    "token_unlearn",
    "ground truth",
]
ARTIFACTS = REPO / "artifacts"
MODEL = Path(os.environ.get("ATWU_MODEL_DIR", REPO / "sample_data" / "models" / "full"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason=f"{CHROMIUM} is missing (apt-get install -y chromium)",
    ),
]
playwright_sync = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is missing (pip install playwright)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`streamlit run` on a free localhost port over fake runs; yields (url, folders)."""
    root = tmp_path_factory.mktemp("browser")
    write_fake_runs(root / "runs")
    # the probe form is offered for runs with a trained scorer only
    (root / "runs" / "fake-atwu-s0" / "scorer.safetensors").write_bytes(b"")
    bench = write_fake_benchmark(root / "bench")
    real_cli = MODEL.is_dir() and (MODEL.parent.parent / "benchmark").is_dir()
    env = {
        **os.environ,
        "ATWU_RUNS_DIRS": str(root / "runs"),
        "ATWU_NEW_RUNS_DIR": str(root / "new"),
        "ATWU_BENCHMARK_DIR": str(MODEL.parent.parent / "benchmark" if real_cli else bench),
        "ATWU_MODEL_DIR": str(MODEL if real_cli else bench),  # the stand-in loads no model
    }
    if not real_cli:
        env.update(ATWU_CLI_MODULE="fake_runs", PYTHONPATH=str(Path(__file__).parent))
    yield from run_streamlit(env, root, real_cli)


@pytest.fixture(scope="module")
def sample_server(tmp_path_factory):
    """`streamlit run` with a fresh clone's defaults: the committed sample runs."""
    if not (SAMPLE_RUNS / "reference-full").is_dir():
        pytest.skip("sample_data/runs is missing")
    root = tmp_path_factory.mktemp("sample-browser")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATWU_")}
    env["ATWU_NEW_RUNS_DIR"] = str(root / "new")
    yield from run_streamlit(env, root, False)


def run_streamlit(env: dict, root: Path, real_cli: bool):
    port = free_port()
    log = open(root / "streamlit.log", "w")  # noqa: SIM115 (closed after the server stops)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(REPO / "dashboard" / "app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "localhost",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://localhost:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read() == b"ok":
                    break
        except OSError:
            time.sleep(0.3)
    else:
        proc.terminate()
        pytest.fail("streamlit did not start: " + (root / "streamlit.log").read_text()[-2000:])
    yield url, root, real_cli
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module (the sync API allows one Playwright at a time)."""
    ARTIFACTS.mkdir(exist_ok=True)
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 2400})
    page.set_default_timeout(60_000)
    page.goto(server[0])
    page.wait_for_selector(".atwu-tok")  # the app opens on the token view
    yield page
    page.close()


def shot(page, name: str) -> None:
    page.wait_for_timeout(800)  # let plotly finish drawing
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_tab(page, label: str) -> None:
    page.get_by_role("tab", name=label).click()
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=60_000)


def test_token_view_renders_coloured_tokens(page):
    open_tab(page, "Token view")
    page.wait_for_selector(".atwu-tok")
    tokens = page.locator(".atwu-tokens").first.locator(".atwu-tok")
    assert tokens.count() > 5
    style = tokens.first.get_attribute("style")
    assert "background:rgb(" in style
    assert "ground-truth fact span" in page.locator(".atwu-legend").first.inner_text()
    page.wait_for_selector(".js-plotly-plot")
    shot(page, "01_token_view")


@pytest.mark.parametrize(
    ("label", "text", "selector"),
    [
        ("Alignment", "AUROC and average precision per run", ".js-plotly-plot"),
        ("Curves & trade-offs", "Trade-off and leaderboard", ".js-plotly-plot"),
        ("Generations", "True answer", None),
        ("Seed study", "Do ATWU's learned weights beat its frozen control?", ".js-plotly-plot"),
        ("Data", "Wrong answer 1", "mark"),
        ("Probe your text", "Score the answer's tokens", "textarea"),
    ],
)
def test_every_tab_renders(server, page, label, text, selector):
    open_tab(page, label)
    page.get_by_text(text).first.wait_for()  # text only this tab shows: not a stale element
    if selector:
        page.locator(selector).first.wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0
    shot(page, "02_" + label.split()[0].lower())


def test_launch_a_short_run_and_see_it_in_the_curves(server, page):
    _, root, real_cli = server
    open_tab(page, "New run")
    page.get_by_label("Max steps").fill("3")  # the method table is bundled: no click to load
    page.get_by_label("Max steps").press("Enter")
    page.wait_for_timeout(500)
    page.get_by_role("button", name="Start", exact=True).click()
    page.get_by_text("finished. It is listed in the sidebar").wait_for(timeout=300_000)
    shot(page, "03_run_finished")
    new = [p for p in (root / "new").iterdir() if (p / "run.json").exists()]
    assert len(new) == 1, f"expected one new run folder, found {new}"
    open_tab(page, "Curves & trade-offs")
    # An ATWU run of seed 0 next to the fake one: named "atwu s0 #2" (the newer of the two).
    legend = page.locator(".js-plotly-plot .legendtext", has_text="atwu s0 #2")
    legend.first.wait_for()
    shot(page, "04_curves_with_new_run" + ("" if real_cli else "_fake_cli"))
    shutil.copy(root / "streamlit.log", ARTIFACTS / "streamlit.log")


# ----------------------------------------------------------------------------- the sample runs


def open_at(browser, url: str, width: int, height: int):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(60_000)
    page.goto(url)
    page.wait_for_selector(".atwu-compare .atwu-tok")
    settle(page)
    return page


def settle(page) -> None:
    """Wait until the script run is over (no status widget, no stale elements)."""
    for _ in range(60):
        page.wait_for_timeout(500)
        running = page.locator('[data-testid="stStatusWidget"]').count()
        if not running and not page.locator('[data-stale="true"]').count():
            break
    page.wait_for_timeout(800)


def row_labels(page) -> list[str]:
    return [t.strip() for t in page.locator(".atwu-compare .atwu-row-label b").all_inner_texts()]


@pytest.mark.parametrize(("width", "height"), [(1440, 900), (1024, 768)])
def test_first_screen_is_the_comparison(sample_server, browser, width, height):
    page = open_at(browser, sample_server[0], width, height)
    try:
        assert row_labels(page) == FIRST_SCREEN_ROWS
        assert "run=20261201-215547-atwu-s0" in page.url  # the committed ATWU run, in the URL
        assert "step=50" in page.url  # its last snapshot
        # the tab bar fits: the last tab is on screen
        data_tab = page.get_by_role("tab", name="Data").bounding_box()
        assert data_tab["x"] + data_tab["width"] <= width
        rows = page.locator(".atwu-compare .atwu-row")
        last = 6 if width >= 1440 else 4  # the ground truth on the large screen
        box = rows.nth(last).bounding_box()
        assert box["y"] + box["height"] <= height, f"row {last} below the fold: {box}"
        assert "Colour scale: per row" in page.locator(".atwu-legend").first.inner_text()
        page.screenshot(path=str(ARTIFACTS / f"10_first_screen_{width}x{height}.png"))
        token = rows.nth(0).locator(".atwu-tok").nth(6)
        token.hover()
        card = token.locator(".atwu-card")
        card.wait_for(state="visible")
        assert "NLL before → now" in card.inner_text()
        assert int(card.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 16
        page.screenshot(path=str(ARTIFACTS / f"11_hover_card_{width}x{height}.png"))
    finally:
        page.close()


def test_play_control_replays_every_row(sample_server, browser):
    page = open_at(browser, sample_server[0], 1440, 900)
    try:
        page.get_by_role("button", name="Play").click()
        page.get_by_text("step 10 · span AUROC").first.wait_for(timeout=60_000)
        page.wait_for_timeout(300)
        page.screenshot(path=str(ARTIFACTS / "12_playing.png"))
        labels = page.locator(".atwu-compare .atwu-row-label").all_inner_texts()
        steps = {text.split("step ")[1].split(" ")[0] for text in labels if "step " in text}
        assert len(steps) == 1, labels  # every row at the same step
        page.get_by_role("button", name="Play").wait_for(timeout=60_000)  # stops at the end
        assert "step 50 · span AUROC" in page.locator(".atwu-compare").inner_text()
    finally:
        page.close()


def test_a_shared_url_restores_the_view(sample_server, browser):
    url = sample_server[0]
    shared = f"{url}/?tab=token&run=20261201-220130-oracle_saturated-s0&example=a018-q11&step=25"
    page = open_at(browser, shared, 1024, 768)
    try:
        assert row_labels(page)[0] == "oracle_saturated"
        assert "step 25 · span AUROC" in page.locator(".atwu-compare").inner_text()
        assert "example=a018-q11" in page.url
        assert "sailor" in page.locator(".atwu-compare").inner_text()  # a018-q11's answer
        page.screenshot(path=str(ARTIFACTS / "13_shared_url_1024x768.png"))
    finally:
        page.close()
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    try:
        page.goto(f"{url}/?tab=alignment")
        page.get_by_text("Who matches the fact spans best?").first.wait_for(timeout=60_000)
        page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
        settle(page)
        assert page.get_by_role("tab", name="Alignment").get_attribute("aria-selected") == "true"
        page.screenshot(path=str(ARTIFACTS / "14_alignment_ranking_1440x900.png"))
        page.goto(f"{url}/?tab=curves")
        page.get_by_text("Trade-off and leaderboard").first.wait_for(timeout=60_000)
        settle(page)
        page.locator(".js-plotly-plot").nth(1).scroll_into_view_if_needed()  # the trade-off
        page.wait_for_timeout(1200)
        page.screenshot(path=str(ARTIFACTS / "15_tradeoff_1440x900.png"))
        page.get_by_text("All columns").first.scroll_into_view_if_needed()
        page.wait_for_timeout(800)
        page.screenshot(path=str(ARTIFACTS / "16_leaderboard_1440x900.png"))
        page.set_viewport_size({"width": 1024, "height": 768})
        page.wait_for_timeout(1000)
        page.get_by_text("All columns").first.scroll_into_view_if_needed()
        page.wait_for_timeout(800)
        page.screenshot(path=str(ARTIFACTS / "17_leaderboard_1024x768.png"))
    finally:
        page.close()


def test_teaching_tour_runs_from_the_page(sample_server, browser):
    page = open_at(browser, sample_server[0], 1024, 768)
    try:
        page.get_by_role("button", name="Guided tour").click()
        page.locator(".atwu-tour").wait_for()
        page.screenshot(path=str(ARTIFACTS / "18_tour_step1_1024x768.png"))
        for _ in range(2):
            page.get_by_role("button", name="Next").click()
            settle(page)
        assert "3 · Watch ATWU learn" in page.locator(".atwu-tour").inner_text()
        # playing: the rows leave step 0 (one snapshot a second; slower on a loaded machine)
        page.get_by_text(re.compile(r"step [1-9]\d* · span AUROC")).first.wait_for(timeout=90_000)
        page.screenshot(path=str(ARTIFACTS / "19_tour_step3_playing_1024x768.png"))
        for _ in range(2):
            page.get_by_role("button", name="Next").click()
            settle(page)
        assert "5 · The trade-off" in page.locator(".atwu-tour").inner_text()
        assert "tour=5" in page.url
        page.screenshot(path=str(ARTIFACTS / "20_tour_step5_1024x768.png"))
    finally:
        page.close()
