"""Helpers for the browser tests (imported by name: pytest puts this directory on sys.path):
Debian's chromium through Playwright, axe-core, and the layout checks a phone needs (nothing
wider than the screen, nothing cut off inside a box that scrolls sideways, tap targets of at
least 44 x 44 px, an element inside the visible part of the page).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
LAPTOP = {"viewport": {"width": 1440, "height": 900}}
SIZES = {"phone": PHONE, "laptop": LAPTOP}
MIN_TAP = 44


def playwright_or_skip():
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None or importlib.util.find_spec("axe_playwright_python") is None:
        pytest.skip("needs playwright and axe-playwright-python: pip install -r requirements-test.txt")
    from playwright.sync_api import sync_playwright

    return sync_playwright


def axe_serious(page) -> list[str]:
    """axe-core's serious and critical violations on the page, as "rule: first node" lines."""
    from axe_playwright_python.sync_playwright import Axe

    # A panel fading in is measured once it is shown, not half transparent.
    page.evaluate("Promise.all(document.getAnimations().map(animation => animation.finished))")
    results = Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {v['nodes'][0]['html'][:160]}" for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")]


# Elements wider than the screen, and boxes that scroll sideways (content cut off without a hint).
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  // Visually hidden text (1 x 1 px, clipped) is for screen readers: not cut off for anyone.
  const hidden = el => { for (let a = el; a; a = a.parentElement) { const b = a.getBoundingClientRect();
    if (b.width <= 1 || b.height <= 1) return true; } return false; };
  const page = document.documentElement.scrollWidth;
  if (page > width + 1) out.push('page scrolls sideways: ' + page);
  for (const el of document.querySelectorAll('body *')) {
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || style.display === 'none') continue;
    if (el.closest('.visually-hidden, .skip-link')) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0 || hidden(el)) continue;
    if (box.right > width + 1) out.push('past the right edge: ' + el.outerHTML.slice(0, 100));
    if (el.scrollWidth > el.clientWidth + 1 && ['auto', 'scroll', 'hidden'].includes(style.overflowX))
      out.push('cut off in a sideways-scrolling box: ' + el.outerHTML.slice(0, 100));
  }
  return out.slice(0, 10);
}"""

# Controls a finger must hit: links, buttons, check boxes, summaries; a link inside running text
# (a paragraph) is exempt, as WCAG 2.5.5 exempts inline targets.
SMALL_TARGETS = """(minimum) => {
  const out = [];
  for (const el of document.querySelectorAll('a[href], button, input:not([type=hidden]), select, summary')) {
    if (el.closest('.visually-hidden, .skip-link') || (el.tagName === 'A' && el.closest('p, li.prose'))) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    if (box.width < minimum || box.height < minimum)
      out.push(Math.round(box.width) + 'x' + Math.round(box.height) + ' ' + el.outerHTML.slice(0, 100));
  }
  return out;
}"""


def layout_problems(page) -> list[str]:
    page.wait_for_load_state("load")  # after a click that navigates, measure the new page
    return page.evaluate(OVERFLOW) + page.evaluate(SMALL_TARGETS, MIN_TAP)


def in_viewport(locator) -> bool:
    """The element is wholly inside the visible part of the page (as scrolled now)."""
    box = locator.bounding_box()
    size = locator.page.viewport_size
    return bool(box) and box["y"] >= 0 and box["x"] >= 0 and box["y"] + box["height"] <= size["height"] \
        and box["x"] + box["width"] <= size["width"]
