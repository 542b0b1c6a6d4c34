// Player page: one stream by WHEP in three modes (original, compare, enhanced),
// a split-screen divider, zoom and pan shared by both halves, and statistics.
//
// Compare runs two WHEP sessions, one per variant, into two stacked <video>s;
// the enhanced one is clipped at the divider. Both variants of a frame carry
// RTP timestamps taken from the same capture time, but each session starts at
// a random RTP base, so the page learns the constant difference between the two
// timelines by matching the pattern of frame intervals (capture jitter makes it
// a fingerprint), then holds back whichever video runs ahead with the
// receiver's jitterBufferTarget. The residual offset is shown in the stats.
"use strict";
(() => {
  const { WHEPViewer, streams, fmt, fmtSize, esc } = window.danstream;
  const $ = (id) => document.getElementById(id);
  const name = decodeURIComponent(location.pathname.split("/").pop());
  const screen = $("screen"), viewport = $("viewport"), zoomer = $("zoomer"), slider = $("slider");
  const overlay = $("overlay"), overlayText = $("overlay-text"), stateEl = $("state"), statsEl = $("stats");
  const videos = { enhanced: $("video-enhanced"), original: $("video-original") };
  $("name").textContent = name;
  document.title = `danstream — ${name}`;

  const params = new URLSearchParams(location.search);
  const MODES = ["original", "compare", "enhanced"];
  let mode = MODES.includes(params.get("mode")) ? params.get("mode")
    : params.get("variant") === "original" ? "original"
    : params.get("variant") === "enhanced" ? "enhanced"
    : window.innerWidth >= 900 ? "compare" : "enhanced";
  let split = clamp(Number(params.get("split") || 50), 0, 100) / 100; // divider, fraction of the picture width
  let zoom = 1, tx = 0, ty = 0; // zoomer transform: translate(tx,ty) scale(zoom), origin top-left
  const viewers = { enhanced: null, original: null };
  const last = { enhanced: null, original: null }; // per variant: inbound-rtp at the start of the rate window, and the rates
  let server = null;
  statsEl.hidden = params.get("stats") !== "1";

  function clamp(x, lo, hi) { return Math.min(hi, Math.max(lo, isFinite(x) ? x : lo)); }
  function needed(m = mode) { return m === "compare" ? ["original", "enhanced"] : [m]; }

  // ---------- connection ----------
  function setState(s) { stateEl.textContent = s; stateEl.className = `pill ${s}`; }
  function showOverlay(text) { overlayText.textContent = text; overlay.hidden = false; }
  function overallState() {
    const st = needed().map((v) => (viewers[v] && viewers[v].state) || "connecting");
    const worst = ["failed", "error", "disconnected", "new", "connecting"].find((s) => st.includes(s));
    setState(worst || "connected");
    const playing = needed().every((v) => videos[v].readyState >= 2 && viewers[v] && viewers[v].state === "connected");
    if (playing) overlay.hidden = true;
  }

  async function connect(variant) {
    const v = new WHEPViewer(`/api/streams/${encodeURIComponent(name)}/whep?variant=${variant}`);
    v.state = "connecting";
    viewers[variant] = v;
    last[variant] = null;
    try {
      await v.connect(videos[variant], (s) => {
        if (viewers[variant] !== v) return;
        v.state = s;
        overallState();
        if (s === "failed" || s === "disconnected") showOverlay(`${variant}: connection ${s} — retrying…`);
        if (s === "failed") setTimeout(() => viewers[variant] === v && reconnect(variant), 2000);
      });
    } catch (e) {
      v.state = "error";
      overallState();
      showOverlay(e.message);
      setTimeout(() => viewers[variant] === v && reconnect(variant), 3000);
    }
  }
  async function disconnect(variant) {
    const v = viewers[variant];
    viewers[variant] = null;
    videos[variant].srcObject = null;
    if (v) await v.close();
  }
  async function reconnect(variant) { await disconnect(variant); align.reset(); if (needed().includes(variant)) connect(variant); }

  function applyMode(m, push = true) {
    mode = m;
    for (const b of document.querySelectorAll("#modes button")) {
      b.classList.toggle("on", b.dataset.mode === mode);
      b.setAttribute("aria-pressed", String(b.dataset.mode === mode));
    }
    screen.className = `screen mode-${mode}`;
    if (push) {
      const u = new URL(location.href);
      u.searchParams.set("mode", mode);
      u.searchParams.delete("variant");
      history.replaceState(null, "", u);
    }
    const want = needed();
    let pending = false;
    for (const variant of ["enhanced", "original"]) {
      if (want.includes(variant) && !viewers[variant]) { connect(variant); pending = true; }
      if (!want.includes(variant) && viewers[variant]) disconnect(variant);
    }
    align.reset();
    if (pending) showOverlay(mode === "compare" ? "Connecting original and enhanced…" : `Connecting (${mode})…`);
    overallState();
    layout();
  }
  for (const b of document.querySelectorAll("#modes button")) b.addEventListener("click", () => b.dataset.mode !== mode && applyMode(b.dataset.mode));
  for (const v of Object.values(videos)) v.addEventListener("playing", () => { overallState(); layout(); });
  window.addEventListener("pagehide", () => { for (const v of Object.values(viewers)) if (v) v.close(); });

  // ---------- geometry: fitted picture, zoom, pan, divider ----------
  function contentSize() {
    for (const v of needed().map((x) => videos[x])) if (v.videoWidth) return [v.videoWidth, v.videoHeight];
    if (server && server.output_width) return [server.output_width, server.output_height];
    return [16, 9];
  }
  // The viewport is the picture's box (contain-fit in the screen), so the
  // divider and zoom work in picture coordinates.
  function layout() {
    const [cw, ch] = contentSize();
    const sw = screen.clientWidth, sh = screen.clientHeight;
    const s = Math.min(sw / cw, sh / ch);
    const w = Math.round(cw * s), h = Math.round(ch * s);
    Object.assign(viewport.style, { width: `${w}px`, height: `${h}px`, left: `${Math.round((sw - w) / 2)}px`, top: `${Math.round((sh - h) / 2)}px` });
    applyTransform();
  }
  function size() { return [viewport.clientWidth || 1, viewport.clientHeight || 1]; }
  function applyTransform() {
    const [w, h] = size();
    zoom = clamp(zoom, 1, 8);
    tx = clamp(tx, w - w * zoom, 0);
    ty = clamp(ty, h - h * zoom, 0);
    zoomer.style.transform = `translate(${tx}px, ${ty}px) scale(${zoom})`;
    // Past 2x show the decoded pixels as they are, which is what a comparison needs.
    zoomer.classList.toggle("pixelated", zoom >= 2);
    $("zoom").value = String(zoom);
    $("zoom-val").textContent = `${zoom.toFixed(1)}×`;
    applySplit();
    drawMinimapRect();
  }
  function applySplit() {
    const [w] = size();
    slider.style.left = `${split * 100}%`;
    slider.setAttribute("aria-valuenow", String(Math.round(split * 100)));
    slider.setAttribute("aria-valuetext", `${Math.round(split * 100)}% original`);
    // The divider is fixed on screen; the clip is in the zoomer's own coordinates.
    const cut = clamp((split * w - tx) / zoom, 0, w);
    videos.enhanced.style.clipPath = mode === "compare" ? `inset(0 0 0 ${cut}px)` : "none";
    align.draw();
  }
  function zoomAt(z, cx, cy) {
    const [w, h] = size();
    if (cx === undefined) { cx = w / 2; cy = h / 2; }
    const nz = clamp(z, 1, 8);
    const px = (cx - tx) / zoom, py = (cy - ty) / zoom;
    tx = cx - px * nz; ty = cy - py * nz; zoom = nz;
    applyTransform();
  }
  function resetView() { zoom = 1; tx = 0; ty = 0; applyTransform(); }
  function setSplit(f) { split = clamp(f, 0, 1); applySplit(); }
  window.addEventListener("resize", layout);
  new ResizeObserver(layout).observe(screen);

  $("zoom").addEventListener("input", (e) => zoomAt(Number(e.target.value)));
  $("zoom-in").addEventListener("click", () => zoomAt(zoom * 1.5));
  $("zoom-out").addEventListener("click", () => zoomAt(zoom / 1.5));
  viewport.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = viewport.getBoundingClientRect();
    zoomAt(zoom * Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015)), e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });
  viewport.addEventListener("dblclick", (e) => { if (!e.target.closest(".slider")) resetView(); });

  // Pointers: the divider knob drags the divider; one finger/mouse on the
  // picture pans when zoomed (or moves the divider at 1x); two fingers pinch.
  const pointers = new Map();
  let gesture = null;
  function local(e) { const r = viewport.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; }
  viewport.addEventListener("pointerdown", (e) => {
    if (e.target.closest(".minimap")) return;
    viewport.setPointerCapture(e.pointerId);
    pointers.set(e.pointerId, local(e));
    if (pointers.size === 2) {
      // A second finger: the first one was the start of a pinch, not a divider drag.
      if (gesture && gesture.kind === "split" && gesture.from !== undefined) setSplit(gesture.from);
      const [a, b] = [...pointers.values()];
      gesture = { kind: "pinch", d: Math.hypot(a[0] - b[0], a[1] - b[1]) || 1, z: zoom };
    } else if (e.target.closest(".slider") || (mode === "compare" && zoom === 1)) {
      gesture = { kind: "split", from: split };
      setSplit(local(e)[0] / size()[0]);
    } else {
      const [x, y] = local(e);
      gesture = { kind: "pan", x, y, tx, ty };
    }
    viewport.classList.add("dragging");
  });
  viewport.addEventListener("pointermove", (e) => {
    if (!pointers.has(e.pointerId) || !gesture) return;
    pointers.set(e.pointerId, local(e));
    if (gesture.kind === "pinch" && pointers.size >= 2) {
      const [a, b] = [...pointers.values()];
      const d = Math.hypot(a[0] - b[0], a[1] - b[1]);
      zoomAt(gesture.z * (d / gesture.d), (a[0] + b[0]) / 2, (a[1] + b[1]) / 2);
    } else if (gesture.kind === "split") {
      setSplit(local(e)[0] / size()[0]);
    } else if (gesture.kind === "pan") {
      const [x, y] = local(e);
      tx = gesture.tx + (x - gesture.x); ty = gesture.ty + (y - gesture.y);
      applyTransform();
    }
  });
  const endPointer = (e) => {
    pointers.delete(e.pointerId);
    if (pointers.size === 0) { gesture = null; viewport.classList.remove("dragging"); }
    else if (gesture && gesture.kind === "pinch") { const [x, y] = [...pointers.values()][0]; gesture = { kind: "pan", x, y, tx, ty }; }
  };
  viewport.addEventListener("pointerup", endPointer);
  viewport.addEventListener("pointercancel", endPointer);

  slider.addEventListener("keydown", (e) => {
    const step = e.shiftKey ? 0.1 : 0.01;
    const moves = { ArrowLeft: -step, ArrowDown: -step, ArrowRight: step, ArrowUp: step, PageDown: -0.1, PageUp: 0.1 };
    if (e.key in moves) setSplit(split + moves[e.key]);
    else if (e.key === "Home") setSplit(0);
    else if (e.key === "End") setSplit(1);
    else return;
    e.preventDefault();
    e.stopPropagation();
  });
  document.addEventListener("keydown", (e) => {
    if (e.target.closest && e.target.closest("input, textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
    const k = e.key;
    if (k === "1" || k === "2" || k === "3") applyMode(MODES[Number(k) - 1]);
    else if (k === "+" || k === "=") zoomAt(zoom * 1.5);
    else if (k === "-" || k === "_") zoomAt(zoom / 1.5);
    else if (k === "0") resetView();
    else if (k === "s" || k === "S") toggleStats();
    else if (k === "f" || k === "F") toggleFullscreen();
    else if (mode === "compare" && (k === "ArrowLeft" || k === "ArrowRight")) setSplit(split + (k === "ArrowLeft" ? -1 : 1) * (e.shiftKey ? 0.1 : 0.01));
    else return;
    e.preventDefault();
  });
  function toggleStats() {
    statsEl.hidden = !statsEl.hidden;
    $("toggle-stats").setAttribute("aria-pressed", String(!statsEl.hidden));
    $("toggle-stats").classList.toggle("on", !statsEl.hidden);
    if (!statsEl.hidden) refreshStats();
  }
  $("toggle-stats").addEventListener("click", toggleStats);
  $("toggle-stats").classList.toggle("on", !statsEl.hidden);
  function toggleFullscreen() {
    if (document.fullscreenElement) document.exitFullscreen();
    else if (screen.requestFullscreen) screen.requestFullscreen().catch(() => {});
  }
  $("fullscreen").addEventListener("click", toggleFullscreen);

  // ---------- minimap: where the zoomed view is ----------
  const mm = $("minimap"), mmCanvas = $("minimap-canvas"), mmRect = $("minimap-rect");
  function drawMinimapRect() {
    mm.hidden = zoom <= 1.001;
    if (mm.hidden) return;
    const [w, h] = size();
    const mw = mmCanvas.clientWidth || 192, mh = mmCanvas.clientHeight || 108;
    Object.assign(mmRect.style, { left: `${(-tx / (w * zoom)) * mw}px`, top: `${(-ty / (h * zoom)) * mh}px`,
      width: `${mw / zoom}px`, height: `${mh / zoom}px` });
  }
  function drawMinimap() {
    if (mm.hidden) return;
    const src = needed().map((x) => videos[x]).find((v) => v.videoWidth);
    if (!src) return;
    const ctx = mmCanvas.getContext("2d");
    mmCanvas.height = Math.round(mmCanvas.width * src.videoHeight / src.videoWidth);
    ctx.drawImage(src, 0, 0, mmCanvas.width, mmCanvas.height);
    drawMinimapRect();
  }
  setInterval(drawMinimap, 500);
  mm.addEventListener("pointerdown", (e) => {
    // Centre the view on the clicked point of the minimap.
    e.stopPropagation();
    const r = mmCanvas.getBoundingClientRect();
    const [w, h] = size();
    const fx = (e.clientX - r.left) / r.width, fy = (e.clientY - r.top) / r.height;
    tx = w / 2 - fx * w * zoom; ty = h / 2 - fy * h * zoom;
    applyTransform();
  });

  // ---------- compare: pair the two sessions' frames by capture instant ----------
  // Each video reports its frames (requestVideoFrameCallback: RTP timestamp,
  // display time). Once the constant difference between the two RTP timelines
  // is known, every presented frame is kept as a VideoFrame and the canvas
  // shows the newest capture instant both variants have: the original left of
  // the divider, the enhanced right of it, always from the same instant. Until
  // then (or without WebCodecs) the two videos show through, clipped at the
  // divider, and the stats give their measured offset.
  const align = (() => {
    const N = 48, KEEP = 12;
    const frames = { enhanced: [], original: [] }; // {rtp, t (expected display, ms), recv}
    const held = { enhanced: [], original: [] };   // {rtp, vf: VideoFrame, t}
    const canvas = $("compare-canvas"), ctx = canvas.getContext("2d");
    let delta = null;   // rtpEnhanced - rtpOriginal for the same capture instant (int32 arithmetic)
    let offsets = [];   // display-time differences of matched frames (enhanced - original), ms
    let waits = [];     // how long the first-come variant of a pair waited for the other, ms
    let pair = null;    // {e, o}: what the canvas shows
    let pairs = 0;
    const sub = (a, b) => (a - b) | 0; // RTP timestamps wrap at 2^32
    const near = (a, b) => Math.abs(sub(a, b)) <= 2; // both sides truncate to 90 kHz ticks
    const lookup = (list, rtp) => list.find((f) => near(f.rtp, rtp));
    const canPair = typeof VideoFrame === "function";

    function release(list, keep) { while (list.length > keep) { const f = list.shift(); if (!isPair(f)) f.vf.close(); } }
    function isPair(f) { return pair && (pair.e === f || pair.o === f); }
    function onFrame(variant, video, meta) {
      if (mode !== "compare" || meta.rtpTimestamp === undefined) return;
      const f = { rtp: meta.rtpTimestamp >>> 0, t: meta.expectedDisplayTime, recv: meta.receiveTime };
      const list = frames[variant];
      if (list.length && list[list.length - 1].rtp === f.rtp) return;
      list.push(f);
      if (list.length > N) list.shift();
      if (delta === null) return;
      const other = variant === "enhanced" ? "original" : "enhanced";
      const want = variant === "enhanced" ? sub(f.rtp, delta) : sub(f.rtp, -delta);
      const m = lookup(frames[other], want);
      if (m) {
        offsets.push(variant === "enhanced" ? f.t - m.t : m.t - f.t);
        if (offsets.length > 30) offsets.shift();
      }
      if (!canPair) return;
      let vf;
      try { vf = new VideoFrame(video, { timestamp: 0 }); } catch (_) { return; }
      const h = held[variant];
      h.push({ rtp: f.rtp, vf, t: performance.now() });
      release(h, KEEP);
      const partner = lookup(held[other], want);
      if (partner) show(variant === "enhanced" ? h[h.length - 1] : partner, variant === "enhanced" ? partner : h[h.length - 1]);
    }
    function show(e, o) {
      const old = pair;
      pair = { e, o };
      pairs++;
      waits.push(Math.abs(e.t - o.t));
      if (waits.length > 30) waits.shift();
      // Frames older than the pair will never be shown.
      for (const [variant, f] of [["enhanced", e], ["original", o]]) {
        const h = held[variant];
        while (h.length && h[0] !== f) { const x = h.shift(); if (!isPair(x)) x.vf.close(); }
      }
      if (old) for (const f of [old.e, old.o]) if (!isPair(f) && !held.enhanced.includes(f) && !held.original.includes(f)) f.vf.close();
      draw();
    }
    // Draws the current pair split at the divider (in picture coordinates).
    function draw() {
      if (!pair || mode !== "compare") { canvas.hidden = true; return; }
      const W = pair.e.vf.displayWidth, H = pair.e.vf.displayHeight;
      if (canvas.width !== W || canvas.height !== H) { canvas.width = W; canvas.height = H; }
      const [w] = size();
      const cut = Math.round(clamp((split * w - tx) / zoom / w, 0, 1) * W);
      if (cut > 0) ctx.drawImage(pair.o.vf, 0, 0, cut, H, 0, 0, cut, H);
      if (cut < W) ctx.drawImage(pair.e.vf, cut, 0, W - cut, H, cut, 0, W - cut, H);
      canvas.hidden = false;
    }
    // The two timelines differ by a constant; score each candidate by how many
    // frames of one have a partner in the other. Ties (a perfectly regular
    // camera) go to the candidate whose frames arrived closest together.
    function findDelta() {
      const E = frames.enhanced.slice(-24), O = frames.original.slice(-24);
      if (E.length < 6 || O.length < 6) return;
      let best = null;
      const seen = new Set();
      for (const e of E) for (const o of O) {
        const d = sub(e.rtp, o.rtp);
        if (seen.has(d)) continue;
        seen.add(d);
        let score = 0, gap = 0;
        for (const e2 of E) {
          const m = lookup(O, sub(e2.rtp, d));
          if (m) { score++; gap += Math.abs(e2.recv - m.recv); }
        }
        gap /= Math.max(score, 1);
        if (!best || score > best.score || (score === best.score && gap < best.gap)) best = { d, score, gap };
      }
      if (best && best.score >= Math.min(E.length, O.length) * 0.6 && best.score >= 5 && delta !== best.d) {
        reset(true);
        delta = best.d;
      }
    }
    function median(a) { if (!a.length) return null; const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]; }
    function reset(keepFrames) {
      for (const variant of ["enhanced", "original"]) { for (const f of held[variant]) if (!isPair(f)) f.vf.close(); held[variant] = []; }
      if (pair) { pair.e.vf.close(); pair.o.vf.close(); pair = null; }
      if (!keepFrames) { frames.enhanced = []; frames.original = []; }
      delta = null; offsets = []; waits = [];
      canvas.hidden = true;
    }
    setInterval(() => {
      if (mode !== "compare") return;
      if (delta === null || frames.enhanced.length % 12 === 0) findDelta();
      // No pair for a while (a stalled variant): show the live videos instead.
      const newest = Math.max(...["enhanced", "original"].map((v) => (held[v].length ? held[v][held[v].length - 1].t : 0)));
      if (pair && performance.now() - Math.max(pair.e.t, pair.o.t) > 2000 && performance.now() - newest < 1000) canvas.hidden = true;
    }, 500);
    for (const variant of ["enhanced", "original"]) {
      const v = videos[variant];
      if (!v.requestVideoFrameCallback) continue;
      const cb = (_, meta) => { onFrame(variant, v, meta); v.requestVideoFrameCallback(cb); };
      v.requestVideoFrameCallback(cb);
    }
    return {
      reset: () => reset(false),
      draw,
      state() {
        return {
          locked: delta !== null, delta, paired: !!pair && !canvas.hidden, pairs,
          pair: pair && { enhanced: pair.e.rtp, original: pair.o.rtp },
          // Paired frames are one instant by construction; offsetMs is how far
          // apart the two sessions present the same frame, waitMs how long
          // the earlier one was held for its partner.
          offsetMs: median(offsets), waitMs: median(waits), samples: offsets.length,
          supported: !!videos.enhanced.requestVideoFrameCallback && canPair,
        };
      },
      // The shown pair's two frames at w×h, e.g. for a test to compare them.
      images(w, h) {
        if (!pair) return null;
        const grab = (vf) => {
          const c = new OffscreenCanvas(w, h), x = c.getContext("2d", { willReadFrequently: true });
          x.drawImage(vf, 0, 0, w, h);
          return x.getImageData(0, 0, w, h);
        };
        return { original: grab(pair.o.vf), enhanced: grab(pair.e.vf), rtp: { enhanced: pair.e.rtp, original: pair.o.rtp }, delta };
      },
      inStepNow() { return !!pair && !canvas.hidden && delta !== null && near(sub(pair.e.rtp, delta), pair.o.rtp); },
    };
  })();

  // ---------- statistics ----------
  async function refreshServer() {
    try { server = (await streams()).find((s) => s.name === name) || null; } catch (_) { server = null; }
    if (server) {
      $("model-tag").textContent = (server.model || "DAN").split(" ")[0] + (server.scale ? ` ×${server.scale}` : "");
      if (!videos.enhanced.videoWidth && !videos.original.videoWidth) layout();
    }
  }

  async function browserStats(variant) {
    const v = viewers[variant];
    if (!v || !v.pc) return null;
    const rep = await v.pc.getStats();
    let inb = null, pair = null;
    rep.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") inb = s;
      if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s;
    });
    if (!inb) return null;
    const codec = inb.codecId && rep.get(inb.codecId);
    // Rates over windows of at least 2 s: at a few fps a shorter one reads 0
    // (and the panel also refreshes on demand, between ticks).
    let r = last[variant];
    const avg = (sum, n) => (n > 0 ? (1000 * sum) / n : null);
    if (!r) {
      r = last[variant] = { base: inb, fps: inb.framesPerSecond || null, kbps: null,
        jitterMs: avg(inb.jitterBufferDelay, inb.jitterBufferEmittedCount), decodeMs: avg(inb.totalDecodeTime, inb.framesDecoded) };
    }
    const dt = inb.timestamp - r.base.timestamp, b0 = r.base;
    if (dt >= 2000) {
      r.fps = (1000 * ((inb.framesDecoded || 0) - (b0.framesDecoded || 0))) / dt;
      r.kbps = (8 * (inb.bytesReceived - b0.bytesReceived)) / dt;
      r.jitterMs = avg(inb.jitterBufferDelay - b0.jitterBufferDelay, inb.jitterBufferEmittedCount - b0.jitterBufferEmittedCount) ?? r.jitterMs;
      r.decodeMs = avg(inb.totalDecodeTime - b0.totalDecodeTime, inb.framesDecoded - b0.framesDecoded) ?? r.decodeMs;
      r.base = inb;
    }
    return {
      codec: codec ? codec.mimeType.replace("video/", "") : "–",
      w: inb.frameWidth, h: inb.frameHeight, frames: inb.framesDecoded || 0, fps: r.fps, kbps: r.kbps,
      jitterMs: r.jitterMs, decodeMs: r.decodeMs,
      lost: inb.packetsLost || 0, dropped: inb.framesDropped || 0,
      rttMs: pair && pair.currentRoundTripTime !== undefined ? 1000 * pair.currentRoundTripTime : null,
    };
  }
  // Glass to glass, roughly: capture -> encoded on the server, half the RTT,
  // the browser's jitter buffer and decode.
  function glassToGlass(b) {
    if (!server || !server.latency_ms || !b || b.jitterMs === null) return null;
    return server.latency_ms + (b.rttMs || 0) / 2 + b.jitterMs + (b.decodeMs || 0);
  }
  const pct = (x) => (typeof x === "number" && isFinite(x) ? `${Math.round(100 * x)}%` : "–");

  async function refreshStats() {
    const b = {};
    for (const variant of needed()) b[variant] = await browserStats(variant);
    const main = b.enhanced || b.original;
    const a = align.state();
    // In compare mode the earlier variant also waits for its partner frame.
    let g2g = glassToGlass(main);
    if (g2g !== null && mode === "compare" && a.paired && a.waitMs !== null) g2g += a.waitMs;
    // The strip under the picture: the headline numbers.
    const bits = [];
    if (server) {
      bits.push(`<b>${esc(fmtSize(server.input_width, server.input_height))}</b> → <b>${esc(fmtSize(server.output_width, server.output_height))}</b>`);
      bits.push(`${fmt(server.fps_out)} fps`);
      bits.push(`SR ${fmt(server.sr_ms, 0)} ms`);
      bits.push(`cache ${pct(server.cache_hit_rate)}`);
      bits.push(`${server.viewers} viewer${server.viewers === 1 ? "" : "s"}`);
    }
    if (g2g !== null) bits.push(`latency ≈ ${fmt(g2g, 0)} ms`);
    if (main) bits.push(`${esc(main.codec)}${main.kbps !== null ? ` · ${fmt(main.kbps / 1000, 2)} Mb/s` : ""}`);
    if (mode === "compare") bits.push(a.paired ? "compare: same instant" : a.locked && a.offsetMs !== null ? `compare offset ${fmt(a.offsetMs, 0)} ms` : "compare: aligning…");
    $("strip").innerHTML = bits.map((x) => `<span>${x}</span>`).join("");
    if (statsEl.hidden) return;

    const rows = [];
    const row = (k, v) => rows.push(`<div><span class="k">${esc(k)}</span>${esc(v)}</div>`);
    const head = (h) => rows.push(`<div class="h">${esc(h)}</div>`);
    head(`${name} · ${mode}`);
    if (server) {
      row("state", server.state);
      row("input", fmtSize(server.input_width, server.input_height));
      row("output", `${fmtSize(server.output_width, server.output_height)} (×${server.scale || "?"})`);
      row("model", server.model || "–");
      const v = server.model_validation;
      if (v) row("adapted on camera", `PSNR-Y ${fmt(v.psnr_y_after, 2)} dB (was ${fmt(v.psnr_y_before, 2)}, bicubic ${fmt(v.psnr_y_bicubic, 2)}; ${v.pairs} held-out pairs)`);
      const p = server.pairs;
      if (p) row("adaptation pairs", `${p.on_disk} on disk, ${p.stored} stored, ${p.state}${p.error ? ": " + p.error : ""}`);
      row("fps in / out", `${fmt(server.fps_in)} / ${fmt(server.fps_out)}`);
      row("SR", `${fmt(server.sr_ms)} ms / frame`);
      row("cache hit rate", pct(server.cache_hit_rate));
      row("tiles / frame", fmt(server.tiles_inferred_per_frame));
      row("viewers", String(server.viewers));
      if (server.latency_ms) row("capture→sent", `${fmt(server.latency_ms, 0)} ms`);
      if (g2g !== null) row("glass-to-glass ≈", `${fmt(g2g, 0)} ms`);
    }
    // The browser's side, one column per session.
    const vs = needed();
    const cols = vs.map((v) => b[v]);
    const enc = (v) => {
      const d = server && (server.delivery || []).find((y) => y.variant === v);
      const e = d && (d.encoders || []).find((x) => x.viewers > 0);
      return e ? `${fmt(e.avg_enc_ms, 0)} ms` : "–";
    };
    const trow = (k, f) => rows.push(`<tr><th>${esc(k)}</th>${cols.map((x, i) => `<td>${esc(x ? f(x, vs[i]) : (viewers[vs[i]] && viewers[vs[i]].state) || "–")}</td>`).join("")}</tr>`);
    head("browser");
    rows.push(`<table><tr><th></th>${vs.map((v) => `<td class="col">${v}</td>`).join("")}</tr>`);
    trow("codec", (x) => x.codec);
    trow("decoded", (x) => fmtSize(x.w, x.h));
    trow("fps", (x) => (x.fps !== null ? fmt(x.fps) : "–"));
    trow("frames", (x) => String(x.frames));
    trow("bitrate", (x) => (x.kbps !== null ? `${fmt(x.kbps, 0)} kb/s` : "–"));
    trow("encode", (x, v) => enc(v));
    trow("jitter buffer", (x) => (x.jitterMs !== null ? `${fmt(x.jitterMs, 0)} ms` : "–"));
    trow("decode", (x) => (x.decodeMs !== null ? `${fmt(x.decodeMs)} ms` : "–"));
    trow("lost / dropped", (x) => `${x.lost} / ${x.dropped}`);
    trow("rtt", (x) => (x.rttMs !== null ? `${fmt(x.rttMs)} ms` : "–"));
    rows.push("</table>");
    if (mode === "compare") {
      head("compare");
      row("alignment", a.paired ? "paired by RTP: same instant" : a.locked ? (a.supported ? "locked, pairing…" : "locked; live videos") : "matching timelines…");
      row("compare offset", a.paired ? "0 ms (paired frames)" : a.offsetMs !== null ? `${fmt(a.offsetMs, 0)} ms` : "–");
      row("session skew", a.offsetMs !== null ? `${fmt(a.offsetMs, 0)} ms (enh. − orig.)` : "–");
      row("held for pair", a.waitMs !== null ? `${fmt(a.waitMs, 0)} ms` : "–");
      row("pairs shown", String(a.pairs));
      row("divider", `${Math.round(split * 100)}%`);
    }
    if (zoom > 1) row("zoom", `${zoom.toFixed(2)}×`);
    statsEl.innerHTML = rows.join("");
  }

  // For tests and the curious: the page's view of itself.
  window.danstreamPlayer = {
    get mode() { return mode; }, get split() { return split; }, get zoom() { return zoom; },
    align: () => align.state(), inStepNow: () => align.inStepNow(), pairImages: (w, h) => align.images(w, h), setSplit, zoomAt, resetView, applyMode,
  };

  refreshServer().then(layout);
  setInterval(refreshServer, 2000);
  setInterval(refreshStats, 1000);
  applyMode(mode, false);
})();
