"""The page of `mirkd transcribe --html` in a real browser: headless Chromium loads it, plays the
embedded audio, and the highlighted bar follows playback; a click on a bar seeks to it.

The browser is driven over the Chrome DevTools protocol on a pipe (--remote-debugging-pipe),
with only the standard library. Skipped, saying so, where no Chromium is installed
(`apt-get install -y chromium`; .ci/run installs it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from mirkd.leadsheet import Bar, write_page

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((found for name in BROWSERS if (found := shutil.which(name))), None)
BAR_SECONDS = 0.5

pytestmark = pytest.mark.skipif(
    BROWSER is None,
    reason="no Chromium on PATH (looked for " + ", ".join(BROWSERS) + "); "
    "install it with `apt-get install -y chromium` to run the browser test of the page",
)


class DevTools:
    """A headless browser and its DevTools protocol session on fds 3 (in) and 4 (out)."""

    def __init__(self, browser: str, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def plumb() -> None:  # in the child: its fd 3 reads our commands, fd 4 answers
            answer = os.dup(from_browser_w)
            os.dup2(to_browser_r, 3)
            os.dup2(answer, 4)

        self.proc = subprocess.Popen(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--mute-audio",
                "--autoplay-policy=no-user-gesture-required",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            pass_fds=(3, 4),
            preexec_fn=plumb,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._id = 0
        self.session: str | None = None

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if self.session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._from_browser, 1 << 16)
                if not chunk:
                    raise RuntimeError(f"the browser closed the DevTools pipe during {method}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def open(self, url: str) -> None:
        page = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        attached = self.call(
            "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}
        )
        self.session = attached["sessionId"]
        self.call("Page.enable")
        self.call("Page.navigate", {"url": url})

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"page script failed: {result['exceptionDetails']}")
        return result["result"]["value"]

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


# Waits for the page, records the highlighted bar, plays (muted) for 2.6 s, records it again,
# then clicks bar 9 and records the audio's time and the highlighted bar after the seek.
PROBE = """new Promise(function (done) {
  function later(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }
  function now() { return Array.from(document.querySelectorAll('.bar.now'))
    .map(function (b) { return Number(b.dataset.index); }); }
  function run() {
    var audio = document.getElementById('audio');
    var seen = {before: now(), model: document.getElementById('model').textContent};
    audio.muted = true;
    audio.play().then(function () { return later(2600); }).then(function () {
      seen.playing = now(); seen.time = audio.currentTime;
      document.querySelectorAll('.bar')[9].click();
      return later(300);
    }).then(function () {
      seen.clicked = now(); seen.clickTime = audio.currentTime; audio.pause(); done(seen);
    }, function (e) { done({error: String(e)}); });
  }
  if (document.readyState === 'complete' && document.getElementById('audio')) run();
  else window.addEventListener('load', run);
})"""


def test_page_plays_and_the_highlighted_bar_follows(tmp_path):
    sr = 22050
    t = np.arange(8 * sr) / sr
    audio = tmp_path / "tone.wav"
    sf.write(audio, (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)
    bars = [Bar(i * BAR_SECONDS, (i + 1) * BAR_SECONDS, ("C", "G")) for i in range(16)]
    html = tmp_path / "tone.html"
    write_page(html, audio, bars, "tone.wav", "Meter 4/4", "tiny (btc)")
    audio.unlink()  # the page must not need the file beside it: the audio is embedded

    assert BROWSER is not None
    browser = DevTools(BROWSER, tmp_path / "profile")
    try:
        browser.open(html.as_uri())
        seen = browser.evaluate(PROBE)
    finally:
        browser.close()
    assert "error" not in seen, seen
    assert seen["model"] == "tiny (btc)"
    assert seen["before"] == [0]
    # after ~2.6 s of playback one bar is highlighted, the one under the playhead (not bar 0)
    assert len(seen["playing"]) == 1 and seen["playing"][0] >= 3
    assert seen["playing"][0] == int(seen["time"] // BAR_SECONDS)
    # a click on bar 9 seeks to its start and highlights it
    assert seen["clicked"] == [9] or seen["clicked"] == [int(seen["clickTime"] // BAR_SECONDS)]
    assert seen["clickTime"] >= 9 * BAR_SECONDS
