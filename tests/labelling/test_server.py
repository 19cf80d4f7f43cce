"""The labelling page's HTTP layer and session: loopback only, writes only its manifest, frames with their loop,
clear messages for bad input."""

import http.client
import json

import pytest

from auspread.errors import ConfigError, DataError
from auspread.labelling import server as server_mod
from auspread.labelling.server import host_allowed, is_loopback, origin_allowed, serve_in_thread
from auspread.labelling.session import LabelSession


@pytest.fixture
def labelled(clips, tmp_path):
    """A manifest in its own folder, next to a file the server must never touch."""
    p = tmp_path / "m.csv"
    p.write_text("source,subject,task,frame,AU01,AU06,AU12,reason\n"
                 f"{clips['long']},anna,,20,,,,key frame\n"
                 f"{clips['long']},anna,,100,,,,key frame\n"
                 f"{clips['short']},bob,,30,,,,key frame\n"
                 f"{clips['short']},bob,,500,,,,beyond the video\n")
    (tmp_path / "other.csv").write_text("do not touch\n")
    return p


@pytest.fixture
def served(labelled, detector):
    session = LabelSession(labelled, detector=detector)
    srv, thread = serve_in_thread(session, 0)
    yield srv, session
    srv.shutdown()
    srv.server_close()


def request(srv, method, path, body=None, headers=None):
    port = srv.server_address[1]
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = {"Host": f"127.0.0.1:{port}"}
    if body is not None:
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    c.request(method, path, body=None if body is None else json.dumps(body), headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, (json.loads(data) if r.getheader("Content-Type", "").startswith("application/json") else data)


def test_binds_loopback_only(served):
    srv, _ = served
    assert srv.server_address[0] == "127.0.0.1"


def test_address_checks():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("127.3.4.5")
    assert not is_loopback("10.0.0.5") and not is_loopback("192.168.1.2") and not is_loopback("garbage")
    assert host_allowed("127.0.0.1:8765", 8765) and host_allowed("localhost:8765", 8765)
    assert not host_allowed("evil.example:8765", 8765) and not host_allowed("127.0.0.1:80", 8765)
    assert not host_allowed(None, 8765)
    assert origin_allowed(None, 8765) and origin_allowed("http://localhost:8765", 8765)
    assert not origin_allowed("http://evil.example", 8765)


def test_refuses_other_hosts_and_non_loopback_clients(served, monkeypatch, labelled):
    srv, _ = served
    before = labelled.read_bytes()
    status, body = request(srv, "GET", "/api/state", headers={"Host": "evil.example"})
    assert status == 403 and "loopback" in body["error"]
    status, _ = request(srv, "POST", "/api/answer", {"k": 0, "values": {"1": 1}}, headers={"Host": "evil.example"})
    assert status == 403
    status, _ = request(srv, "POST", "/api/answer", {"k": 0, "values": {"1": 1}},
                        headers={"Origin": "http://evil.example"})
    assert status == 403
    # a client whose address is not loopback (as if the socket were reachable from the network)
    monkeypatch.setattr(server_mod, "is_loopback", lambda address: False)
    status, _ = request(srv, "GET", "/api/state")
    assert status == 403
    status, _ = request(srv, "POST", "/api/answer", {"k": 0, "values": {"1": 1}})
    assert status == 403
    assert labelled.read_bytes() == before


def test_answers_write_only_the_given_manifest(served, labelled):
    srv, _ = served
    folder = labelled.parent
    others = {p.name: p.read_bytes() for p in folder.iterdir() if p != labelled}
    status, st = request(srv, "GET", "/api/state")
    assert status == 200 and st["total"] == 4 and st["first_open"] == 0
    assert [a["code"] for a in st["aus"]] == ["AU01", "AU06", "AU12"] and st["aus"][2]["name"] == "Lip Corner Puller"
    assert st["aus"][2]["look_for"] and st["aus"][0]["key"] == "1"
    status, out = request(srv, "POST", "/api/answer", {"k": 0, "values": {"1": 1, "6": 0, "12": None}})
    assert status == 200 and out["answered"] == 1 and out["first_open"] == 1
    # requests that try to name something else are refused
    for body in ({"k": 0, "values": {"1": 1}, "path": str(folder / "other.csv")}, {"k": 99, "values": {}},
                 {"k": 0, "values": {"7": 1}}, {"k": 0, "values": {"1": 2}}, {"k": 0, "values": {"1": True}}):
        status, _ = request(srv, "POST", "/api/answer", body)
        assert status == 400, body
    status, _ = request(srv, "POST", "/api/answer", None, headers={"Content-Type": "text/plain"})
    assert status in (400, 415)
    for path in ("/../other.csv", "/static/../../other.csv", "/other.csv", "/api/frame?k=x"):
        status, _ = request(srv, "GET", path)
        assert status in (400, 404), path
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p != labelled} == others
    rows = labelled.read_text().splitlines()
    assert rows[1].split(",")[4:7] == ["1", "0", ""]


def test_frame_payload_has_the_face_and_the_loop(served):
    srv, _ = served
    status, f = request(srv, "GET", "/api/frame?k=0")
    assert status == 200 and f["face"].startswith("data:image/jpeg;base64,")
    assert len(f["clip"]) == len(f["clip_frames"]) >= 5 and f["clip_frames"][f["centre"]] == 20
    assert f["interval_ms"] > 0 and f["note"] == ""
    status, g = request(srv, "GET", "/api/frame?k=1")  # later in the same video: the open decoder moves on
    assert status == 200 and g["frame"] == 100 and g["clip_frames"][g["centre"]] == 100


def test_a_frame_the_video_does_not_have_gets_a_clear_message(served, clips):
    srv, _ = served
    status, f = request(srv, "GET", "/api/frame?k=3")
    assert status == 422 and "has no frame 500" in f["error"] and str(clips["short"]) in f["error"]
    status, f = request(srv, "GET", "/api/frame?k=2")  # the reader recovers for the next request
    assert status == 200


def test_a_frame_without_a_face_is_shown_whole_with_a_note(clips, detector, tmp_path):
    p = tmp_path / "m.csv"
    p.write_text(f"source,subject,frame,AU01\n{clips['long']},anna,60,\n")
    f = LabelSession(p, detector=detector).frame(0)
    assert "no face" in f["note"]


def test_session_input_errors(labelled, tmp_path, clips):
    with pytest.raises(ConfigError, match="AU4"):
        LabelSession(labelled, aus=[1, 4])
    p = tmp_path / "none.csv"
    p.write_text(f"source,subject,frame,AU01\n{clips['long']},anna,,\n")
    with pytest.raises(DataError, match="no frame to label"):
        LabelSession(p)
    with pytest.raises(DataError, match="no such manifest"):
        LabelSession(tmp_path / "missing.csv")
    q = tmp_path / "gone.csv"
    q.write_text(f"source,subject,frame,AU01\n{tmp_path / 'gone.mp4'},anna,3,\n")
    out = LabelSession(q).frame(0)
    assert "gone.mp4" in out["error"] and "no such video" in out["error"]
