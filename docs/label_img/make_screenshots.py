"""Regenerate the screenshots of docs/label.md: synthetic face videos (the test suite's generator), suggest-labels,
the page in headless Chromium (Debian's chromium + chromium-driver, selenium), a few keys pressed.

    PYTHONPATH=src python docs/label_img/make_screenshots.py
"""

import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "faces"))

from faces_fakes import composite, synth_tree, write_video  # noqa: E402


def shoot(driver, path: Path) -> None:
    time.sleep(0.7)
    driver.save_screenshot(str(path))
    im = Image.open(path).convert("RGB")  # small PNGs: 96 colours are plenty for a UI
    im.quantize(colors=96, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)


def main() -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from auspread.data.readers import read_dataset
    from auspread.labelling.manifest import LabelManifest

    work = Path(tempfile.mkdtemp(prefix="label-shots-"))
    idx = read_dataset("bp4d", synth_tree(work / "tree", frames=60, subjects=4))
    (work / "clips").mkdir()
    for rec, name in zip(idx.videos, ["anna", "bob", "carl", "dina"]):
        faces = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in rec.source.paths])
        f = np.concatenate([faces, faces[::-1], faces])
        write_video(work / "clips" / f"{name}.mp4", composite(f, [True] * len(f)))
    run = lambda *a, **k: subprocess.Popen([sys.executable, "-m", "auspread", *a], cwd=work, **k)  # noqa: E731
    assert run("suggest-labels", "clips", "--budget", "12", "--out", "labels.csv", "--no-progress").wait() == 0
    port = 8799
    out = Path(__file__).resolve().parent

    def serve():
        server = run("label", "labels.csv", "--port", str(port), "--no-browser")
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state")
                return server
            except OSError:
                time.sleep(0.3)
        raise SystemExit("the server did not start")

    o = webdriver.ChromeOptions()
    o.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1180,800", "--hide-scrollbars"):
        o.add_argument(a)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    body = lambda: d.find_element("tag name", "body")  # noqa: E731

    def ready(k):
        WebDriverWait(d, 60).until(lambda _: body().get_attribute("data-ready") == "1"
                                   and body().get_attribute("data-k") == str(k))

    server = serve()
    try:
        d.get(f"http://127.0.0.1:{port}/")
        ready(0)
        ActionChains(d).send_keys("47").send_keys(Keys.ENTER).perform()
        ready(1)
        ActionChains(d).send_keys("127").key_down(Keys.SHIFT).send_keys("5").key_up(Keys.SHIFT).perform()
        shoot(d, out / "label_page.png")
    finally:
        server.terminate()
        server.wait()
    m = LabelManifest.read(work / "labels.csv")  # the rest answered, as after a labelling session
    for i in m.frame_rows()[1:]:
        m.answer(i, {a: int(a in (6, 12)) for a in m.aus})
    server = serve()
    try:
        d.get(f"http://127.0.0.1:{port}/")
        ready(11)
        shoot(d, out / "label_done.png")
    finally:
        d.quit()
        server.terminate()
        server.wait()
    print(f"screenshots in {out}; work folder {work}")


if __name__ == "__main__":
    main()
