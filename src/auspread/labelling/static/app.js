// The labelling page: one frame at a time, per-AU toggles, every answer POSTed to /api/answer (saved at once).
"use strict";
const S = { aus: [], frames: [], k: 0, values: {}, timer: null, clip: [], at: 0, busy: false };
const $ = (id) => document.getElementById(id);
const KEYCODE = (key) => (/[0-9]/.test(key) ? "Digit" + key : "Key" + key.toUpperCase());

function message(text) { $("message").textContent = text || ""; }

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  const body = await r.json().catch(() => ({ error: `${url}: HTTP ${r.status}` }));
  if (!r.ok && !body.error) body.error = `${url}: HTTP ${r.status}`;
  return body;
}

function stateName(v) { return v === 1 ? "present" : v === 0 ? "absent" : "unsure"; }

function renderAUs() {
  for (const li of $("aus").children) {
    const v = S.values[li.dataset.au];
    li.className = stateName(v);
    li.querySelector(".state").textContent = v === 1 ? "present" : v === 0 ? "absent" : "not sure";
  }
}

function buildAUs() {
  const ol = $("aus");
  ol.textContent = "";
  for (const a of S.aus) {
    const li = document.createElement("li");
    li.dataset.au = String(a.au);
    li.id = "au-" + a.au;
    li.title = "click: present/absent, shift+click: not sure";
    li.innerHTML = `<kbd></kbd><span class="name"></span><span class="look"></span><span class="state"></span>`;
    li.querySelector("kbd").textContent = a.key;
    li.querySelector(".name").textContent = `${a.code} ${a.name}`;
    li.querySelector(".look").textContent = a.look_for;
    li.addEventListener("click", (ev) => toggle(String(a.au), ev.shiftKey));
    ol.appendChild(li);
  }
}

function toggle(au, unsure) {
  if (unsure) S.values[au] = null;
  else S.values[au] = S.values[au] === 1 ? 0 : 1;
  renderAUs();
}

function updateProgress() {
  const answered = S.frames.filter((f) => f.answered).length;
  $("progress").textContent = `${answered} / ${S.frames.length} answered`;
  $("bar").max = S.frames.length;
  $("bar").value = answered;
  const f = S.frames[S.k];
  $("where").textContent = f ? `frame ${S.k + 1} of ${S.frames.length}: ${f.source}, frame ${f.frame}` : "";
  $("done").hidden = answered < S.frames.length;
}

function play() {
  clearInterval(S.timer);
  if (!S.clip.length) return;
  const show = () => {
    $("loop").src = S.clip[S.at];
    [...$("strip").children].forEach((im, i) => im.classList.toggle("now", i === S.at));
  };
  show();
  if (!$("playing").checked) return;
  S.timer = setInterval(() => { S.at = (S.at + 1) % S.clip.length; show(); }, S.interval || 80);
}

async function show(k) {
  S.k = Math.max(0, Math.min(k, S.frames.length - 1));
  const f = S.frames[S.k];
  S.values = {};
  for (const a of S.aus) {
    const v = f.values[String(a.au)];
    S.values[String(a.au)] = f.answered ? v : (v === null || v === undefined ? 0 : v);  // open frames start absent
  }
  renderAUs();
  updateProgress();
  $("reason").textContent = f.reason ? "why this frame: " + f.reason : "";
  $("note").textContent = "";
  message("");
  document.body.dataset.k = String(S.k);
  document.body.dataset.ready = "0";
  const d = await getJSON(`/api/frame?k=${S.k}`);
  if (S.k !== f.k) return;  // moved on meanwhile
  S.broken = d.error || null;
  if (d.error) {
    message(d.error);
    $("face").removeAttribute("src");
    S.clip = [];
    $("strip").textContent = "";
    play();
  } else {
    $("face").src = d.face;
    S.clip = d.clip;
    S.interval = d.interval_ms;
    S.at = d.centre;
    $("strip").textContent = "";
    d.clip.forEach((src, i) => {
      const im = document.createElement("img");
      im.src = src;
      im.alt = `frame ${d.clip_frames[i]}`;
      if (i === d.centre) im.classList.add("centre");
      $("strip").appendChild(im);
    });
    $("note").textContent = d.note || "";
    play();
  }
  document.body.dataset.ready = "1";
}

async function save() {
  if (S.busy) return;
  if (S.broken) { message(S.broken + " (fix or remove this row of the manifest; the answer is not saved)"); return; }
  S.busy = true;
  const f = S.frames[S.k];
  let saved = false;
  try {
    const r = await fetch("/api/answer", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ k: S.k, values: S.values }),
    });
    const body = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
    if (!r.ok) message("not saved: " + (body.error || r.status));
    else saved = true;
  } catch (e) {
    message("not saved: the labelling server does not answer (is `auspread label` still running?)");
  } finally {
    S.busy = false;
  }
  if (!saved) return;
  f.answered = true;
  f.values = Object.assign({}, S.values);
  document.body.dataset.saved = String(Number(document.body.dataset.saved || 0) + 1);
  if (S.k + 1 < S.frames.length) await show(S.k + 1);
  else updateProgress();
}

function onKey(ev) {
  if (ev.altKey || ev.ctrlKey || ev.metaKey) return;
  if (ev.key === "Enter" || ev.key === "ArrowRight") { ev.preventDefault(); save(); return; }
  if (ev.key === "ArrowLeft") { ev.preventDefault(); if (S.k > 0) show(S.k - 1); return; }
  const a = S.aus.find((x) => KEYCODE(x.key) === ev.code);
  if (a) { ev.preventDefault(); toggle(String(a.au), ev.shiftKey); }
}

async function start() {
  const st = await getJSON("/api/state");
  if (st.error) { message(st.error); return; }
  S.aus = st.aus;
  S.frames = st.frames;
  buildAUs();
  document.addEventListener("keydown", onKey);
  $("save").addEventListener("click", save);
  $("prev").addEventListener("click", () => { if (S.k > 0) show(S.k - 1); });
  $("playing").addEventListener("change", play);
  document.title = `auspread label: ${st.manifest}`;
  await show(st.first_open === null ? S.frames.length - 1 : st.first_open);
}

start();
