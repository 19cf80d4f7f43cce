"""The labelling page in a real browser: headless Chromium driven by Selenium with the system chromedriver.

Enable with Debian's packages: ``apt-get install chromium chromium-driver`` (and ``pip install selenium``, part of
the ``test`` extra). Without them these tests skip and say why.
"""

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
DRIVER = shutil.which("chromedriver")
try:
    import selenium  # noqa: F401
    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER and HAVE_SELENIUM),
    reason="browser tests need Chromium, chromedriver and selenium: apt-get install chromium chromium-driver; "
           f"pip install selenium (found: chromium={CHROMIUM}, chromedriver={DRIVER}, selenium={HAVE_SELENIUM})")

SRC = Path(__file__).resolve().parents[2] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(manifest: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "auspread", "label", str(manifest), "--port", str(port),
                             "--no-browser"], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited: {proc.stderr.read()}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=2).read()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the server did not start within 60 s")


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,800"):
        o.add_argument(a)
    d = webdriver.Chrome(service=Service(DRIVER), options=o)
    yield d
    d.quit()


def wait_ready(d, k=None, timeout=60):
    from selenium.webdriver.support.ui import WebDriverWait

    body = lambda d: d.find_element("tag name", "body")  # noqa: E731
    WebDriverWait(d, timeout).until(lambda d: body(d).get_attribute("data-ready") == "1"
                                    and (k is None or body(d).get_attribute("data-k") == str(k)))


def press(d, keys: str, shift: bool = False):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    a = ActionChains(d)
    if shift:
        a.key_down(Keys.SHIFT)
    a.send_keys(keys)
    if shift:
        a.key_up(Keys.SHIFT)
    a.perform()


def rows(manifest: Path) -> list[dict]:
    with open(manifest, newline="") as f:
        return list(csv.DictReader(f))


def test_label_with_the_keyboard_kill_restart_and_resume(browser, clips, tmp_path):
    from selenium.webdriver.common.keys import Keys

    d = browser
    m = tmp_path / "m.csv"
    m.write_text("source,subject,task,frame,AU01,AU06,AU12,reason\n"
                 f"{clips['long']},anna,,20,,,,key frame 1\n"
                 f"{clips['long']},anna,,100,,,,key frame 2\n"
                 f"{clips['short']},bob,,10,,,,key frame 3\n"
                 f"{clips['short']},bob,,60,,,,key frame 4\n"
                 f"{clips['short']},bob,,900,,,,a frame the video lacks\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = start_server(m, port)
    try:
        d.get(url)
        wait_ready(d, 0)
        assert "0 / 5 answered" in d.find_element("id", "progress").text
        assert "Lip Corner Puller" in d.find_element("id", "au-12").text
        assert d.find_element("id", "face").get_attribute("src").startswith("data:image/jpeg")
        assert len(d.find_elements("css selector", "#strip img")) >= 5
        # frame 1: AU01 present (key 1), AU12 present then absent again (key 3 twice), Enter saves
        press(d, "1")
        press(d, "33")
        assert d.find_element("id", "au-1").get_attribute("class") == "present"
        press(d, Keys.ENTER)
        wait_ready(d, 1)
        # frame 2: AU06 present (key 2), AU12 not sure (Shift+3), → saves
        press(d, "2")
        press(d, "3", shift=True)
        assert d.find_element("id", "au-12").get_attribute("class") == "unsure"
        press(d, Keys.ARROW_RIGHT)
        wait_ready(d, 2)
        r = rows(m)
        assert [r[0][c] for c in ("AU01", "AU06", "AU12")] == ["1", "0", "0"] and r[0]["answered"]
        assert [r[1][c] for c in ("AU01", "AU06", "AU12")] == ["0", "1", ""] and r[1]["answered"]
        assert not r[2].get("answered") and r[2]["reason"] == "key frame 3"
        # kill the server mid-way (no clean shutdown), then start it again: nothing answered is lost
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert [x["answered"] != "" for x in rows(m)] == [True, True, False, False, False]
        proc = start_server(m, port)
        d.get(url)
        wait_ready(d, 2)  # resumes at the first open frame
        assert "2 / 5 answered" in d.find_element("id", "progress").text
        press(d, Keys.ARROW_LEFT)  # the previous answer is shown as given
        wait_ready(d, 1)
        assert [d.find_element("id", f"au-{a}").get_attribute("class") for a in (1, 6, 12)] == \
            ["absent", "present", "unsure"]
        press(d, Keys.ARROW_RIGHT)  # saving it again keeps it
        wait_ready(d, 2)
        press(d, "13")
        press(d, Keys.ENTER)
        wait_ready(d, 3)
        press(d, Keys.ENTER)  # all absent
        wait_ready(d, 4)  # a frame the video does not have: a clear message, and no answer is taken
        text = d.find_element("id", "message").text
        assert "has no frame 900" in text and "short.mp4" in text
        press(d, Keys.ENTER)
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(d, 10).until(lambda d: "not saved" in d.find_element("id", "message").text)
        final = rows(m)
        assert [[x[c] for c in ("AU01", "AU06", "AU12")] for x in final] == \
            [["1", "0", "0"], ["0", "1", ""], ["1", "0", "1"], ["0", "0", "0"], ["", "", ""]]
        assert [bool(x["answered"]) for x in final] == [True, True, True, True, False]
        assert "4 / 5 answered" in d.find_element("id", "progress").text
        from auspread.data.readers import read_dataset

        m.write_text("".join(line for line in m.read_text().splitlines(True) if ",900," not in line))
        idx = read_dataset("generic", m)  # the filled manifest is training data as it stands
        assert idx.videos[0].labels[[20, 100]].tolist() == [[1, 0, 0], [0, 1, -1]]
        assert idx.videos[1].labels[[10, 60]].tolist() == [[1, 0, 1], [0, 0, 0]]
    finally:
        proc.kill()
        proc.wait(10)

