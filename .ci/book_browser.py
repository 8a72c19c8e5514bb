#!/usr/bin/env python3
"""Opens pages of the built book (book/book) in headless Chromium at desktop and phone width,
saves a screenshot of each, and fails on what a reader would see broken:

- an image that did not load (a missing or unreadable file);
- a page wider than the window (the reader must scroll the whole page sideways), or an
  element of the page body that reaches past the window's right edge outside a box that
  scrolls sideways (cut off, or pushing the page wider);
- at phone width, an SVG image whose smallest text is set below MIN_TEXT_PX on the screen
  (the image's smallest font-size, scaled by its width on the page over its viewBox's);
- at desktop width, a code block whose text is wider than the block (cut off or scrolled);
- a step-through figure (figure.stepper) whose "next" button does not change the frame.

Chromium is driven over its DevTools protocol through a pipe (--remote-debugging-pipe: JSON
messages separated by NUL bytes on file descriptors 3 and 4), so the check needs nothing but
Python's standard library and the browser.

Usage: book_browser.py CHROMIUM BOOK_DIR OUT_DIR PAGE...   (pages relative to BOOK_DIR)
"""

import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time

# The phone is the narrowest in common use (375 CSS px: iPhone SE, mini).
WIDTHS = [("desktop", 1440, 900, False), ("phone", 375, 667, True)]
MIN_TEXT_PX = 8
TIMEOUT_S = 30

# Runs in the page after its load event; answers a JSON string.
CHECK_JS = r"""
(async () => {
  const imgs = [...document.images];
  await Promise.race([
    Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; }))),
    new Promise(r => setTimeout(r, 10000)),
  ]);
  const broken = imgs.filter(i => !i.complete || i.naturalWidth === 0)
                     .map(i => i.getAttribute('src'));
  const doc = document.documentElement;
  const pageOverflow = Math.max(doc.scrollWidth, document.body.scrollWidth) > window.innerWidth + 1
    ? Math.max(doc.scrollWidth, document.body.scrollWidth) : 0;
  // Elements of the page body past the window's right edge, unless inside a box that scrolls
  // sideways (code, a step-through's or a wide figure's box, a table's wrapper).
  const scrolls = e => {
    for (let a = e.parentElement; a && a !== document.body; a = a.parentElement) {
      const o = getComputedStyle(a).overflowX;
      if (o === 'auto' || o === 'scroll') return true;
    }
    return false;
  };
  const past = [...document.querySelectorAll('main *')].filter(e => {
    if (e.offsetParent === null) return false;
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.right > window.innerWidth + 1 && !scrolls(e);
  }).slice(0, 5).map(e => `<${e.tagName.toLowerCase()}${e.className ? ' class=' + e.className : ''}> `
                          + `${Math.round(e.getBoundingClientRect().right)} px: `
                          + (e.getAttribute('src') || e.textContent.trim().slice(0, 50)));
  // Every SVG image shown, with its width on the page (the text check is in Python).
  const svgs = imgs.filter(i => i.offsetParent !== null && /\.svg$/i.test(i.getAttribute('src') || ''))
                   .map(i => ({src: i.getAttribute('src'), width: i.getBoundingClientRect().width}));
  const wide = [...document.querySelectorAll('main pre')].filter(p => {
    const c = p.querySelector('code') || p;
    return c.scrollWidth > c.clientWidth + 1 || p.scrollWidth > p.clientWidth + 1;
  }).map(p => (p.textContent.split('\n').find(l => l.trim()) || '').slice(0, 60));
  const steppers = [];
  for (const fig of document.querySelectorAll('figure.stepper')) {
    const next = fig.querySelector('.stepper-next');
    const shown = () => [...fig.querySelectorAll('img')].filter(i => !i.hidden && i.offsetParent !== null)
                                                       .map(i => i.getAttribute('src'));
    const before = shown();
    if (next) next.click();
    await new Promise(r => setTimeout(r, 50));
    const after = shown();
    steppers.push({id: fig.id, controls: !!next, before, after,
                   ok: !!next && before.length === 1 && after.length === 1 && before[0] !== after[0]});
  }
  return JSON.stringify({broken, pageOverflow, past, svgs, wide, steppers});
})()
"""


class Chromium:
    """A headless Chromium with one page, driven over --remote-debugging-pipe."""

    def __init__(self, exe):
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()
        self.profile = tempfile.mkdtemp(prefix="book-browser-")

        def fds():
            a, b = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--no-first-run", "--mute-audio", "--remote-debugging-pipe",
             "--user-data-dir=" + self.profile, "about:blank"],
            preexec_fn=fds, close_fds=False,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buf = b""
        self.next_id = 0
        self.events = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", session=True)

    def send(self, method, params, session):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(msg).encode() + b"\0")
        return self.next_id

    def read(self, deadline):
        while b"\0" not in self.buf:
            if time.time() > deadline:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self.from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method, params=None, session=False):
        want = self.send(method, params, session)
        deadline = time.time() + TIMEOUT_S
        while True:
            msg = self.read(deadline)
            if msg.get("id") == want:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method):
        deadline = time.time() + TIMEOUT_S
        while True:
            for i, e in enumerate(self.events):
                if e.get("method") == method:
                    del self.events[: i + 1]
                    return e
            self.events.append(self.read(deadline))

    def close(self):
        try:
            self.send("Browser.close", None, False)
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
        subprocess.run(["rm", "-rf", self.profile], check=False)


def svg_text_px(base, src, shown_width):
    """The smallest text of the SVG file `src` (relative to `base`) as set on the screen when
    the image is shown `shown_width` px wide: its smallest font-size times the shown width over
    the viewBox's (or the width attribute's). None if the file gives neither size."""
    try:
        with open(os.path.join(base, src), encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    sizes = [float(m) for m in re.findall(r'font-size[=:]\s*"?([0-9.]+)', text)]
    box = re.search(r'viewBox="\s*[-0-9.]+[\s,]+[-0-9.]+[\s,]+([0-9.]+)', text) or \
        re.search(r'<svg[^>]*\swidth="([0-9.]+)', text)
    if not sizes or not box or float(box.group(1)) <= 0:
        return None
    return min(sizes) * shown_width / float(box.group(1))


def main():
    exe, book, out, pages = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    os.makedirs(out, exist_ok=True)
    browser = Chromium(exe)
    failures = []
    try:
        for name, width, height, mobile in WIDTHS:
            browser.call("Emulation.setDeviceMetricsOverride",
                         {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
                         session=True)
            for page in pages:
                url = "file://" + os.path.abspath(os.path.join(book, page))
                browser.events.clear()
                browser.call("Page.navigate", {"url": url}, session=True)
                browser.wait_event("Page.loadEventFired")
                shot = browser.call("Page.captureScreenshot", {"format": "png"}, session=True)
                png = os.path.join(out, f"{page.replace('/', '_').removesuffix('.html')}-{name}.png")
                with open(png, "wb") as f:
                    f.write(base64.b64decode(shot["data"]))
                res = browser.call("Runtime.evaluate",
                                   {"expression": CHECK_JS, "awaitPromise": True, "returnByValue": True},
                                   session=True)
                if "exceptionDetails" in res:
                    failures.append(f"{page} ({name}): the check script failed: {res['exceptionDetails']}")
                    continue
                r = json.loads(res["result"]["value"])
                where = f"{page} ({name}, {width} px)"
                for src in r["broken"]:
                    failures.append(f"{where}: image did not load: {src}")
                if r["pageOverflow"]:
                    failures.append(f"{where}: the page is {r['pageOverflow']} px wide, wider than the window")
                for e in r["past"]:
                    failures.append(f"{where}: reaches past the window's right edge: {e}")
                if mobile:
                    for img in r["svgs"]:
                        px = svg_text_px(os.path.join(book, os.path.dirname(page)), img["src"], img["width"])
                        if px is not None and px < MIN_TEXT_PX:
                            failures.append(f"{where}: the text of {img['src']} is {px:.1f} px on the screen "
                                            f"(shown {img['width']:.0f} px wide; at least {MIN_TEXT_PX} px wanted)")
                if not mobile:
                    for line in r["wide"]:
                        failures.append(f"{where}: code block wider than the page: {line!r}")
                for s in r["steppers"]:
                    if not s["ok"]:
                        failures.append(f"{where}: step-through #{s['id']} does not step (controls: "
                                        f"{s['controls']}; frames shown before next: {len(s['before'])}, "
                                        f"after: {len(s['after'])}; {s['before'][:1]} -> {s['after'][:1]})")
                for s in r["steppers"]:
                    # A second screenshot with each step-through in view (after one "next").
                    browser.call("Runtime.evaluate", {"expression": f"document.getElementById({json.dumps(s['id'])})"
                                                      ".scrollIntoView()"}, session=True)
                    time.sleep(0.2)
                    shot = browser.call("Page.captureScreenshot", {"format": "png"}, session=True)
                    with open(png.removesuffix(".png") + f"-{s['id']}.png", "wb") as f:
                        f.write(base64.b64decode(shot["data"]))
                print(f"checked {where}: {len(r['steppers'])} step-through(s), "
                      f"{len(r['wide'])} wide code block(s), screenshot {png}")
    finally:
        browser.close()
    if failures:
        print("\n".join("FAILED: " + f for f in failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
