// Player page: WHEP playback of one stream, enhanced/original switch, stats overlay.
"use strict";
(() => {
  const { WHEPViewer, streams, fmt, fmtSize, esc } = window.danstream;
  const name = decodeURIComponent(location.pathname.split("/").pop());
  const video = document.getElementById("video");
  const overlay = document.getElementById("overlay");
  const overlayText = document.getElementById("overlay-text");
  const stateEl = document.getElementById("state");
  const statsEl = document.getElementById("stats");
  document.getElementById("name").textContent = name;
  document.title = `danstream — ${name}`;

  let variant = new URLSearchParams(location.search).get("variant") === "original" ? "original" : "enhanced";
  let viewer = null;
  let server = null;
  let last = null; // previous inbound-rtp report, for rates

  function setState(s) {
    stateEl.textContent = s;
    stateEl.className = `pill ${s}`;
  }
  function showOverlay(text) { overlayText.textContent = text; overlay.hidden = false; }

  async function play() {
    if (viewer) await viewer.close();
    last = null;
    for (const b of document.querySelectorAll(".seg button")) b.classList.toggle("on", b.dataset.variant === variant);
    showOverlay(`Connecting (${variant})…`);
    setState("connecting");
    const v = new WHEPViewer(`/api/streams/${encodeURIComponent(name)}/whep?variant=${variant}`);
    viewer = v;
    try {
      await v.connect(video, (s) => {
        if (viewer !== v) return;
        setState(s);
        if (s === "failed" || s === "disconnected") showOverlay(`Connection ${s} — retrying…`);
        if (s === "failed") setTimeout(() => viewer === v && play(), 2000);
      });
    } catch (e) {
      setState("error");
      showOverlay(e.message);
      setTimeout(() => viewer === v && play(), 3000);
    }
  }
  video.addEventListener("playing", () => { overlay.hidden = true; });

  for (const b of document.querySelectorAll(".seg button")) {
    b.addEventListener("click", () => {
      if (b.dataset.variant === variant) return;
      variant = b.dataset.variant;
      const u = new URL(location.href);
      u.searchParams.set("variant", variant);
      history.replaceState(null, "", u);
      play();
    });
  }
  document.getElementById("toggle-stats").addEventListener("click", () => { statsEl.hidden = !statsEl.hidden; });
  window.addEventListener("pagehide", () => viewer && viewer.close());

  async function refreshServer() {
    try { server = (await streams()).find((s) => s.name === name) || null; } catch (_) { server = null; }
  }

  async function refreshStats() {
    const rows = [];
    const row = (k, v) => rows.push(`<div><span class="k">${esc(k)}</span>${esc(v)}</div>`);
    const head = (h) => rows.push(`<div class="h">${esc(h)}</div>`);
    head(`${name} · ${variant}`);
    if (server) {
      row("state", server.state);
      row("input", fmtSize(server.input_width, server.input_height));
      row("output", `${fmtSize(server.output_width, server.output_height)} (×${server.scale || "?"})`);
      row("model", server.model || "–");
      row("fps in/out", `${fmt(server.fps_in)} / ${fmt(server.fps_out)}`);
      row("SR", `${fmt(server.sr_ms)} ms`);
      if (server.latency_ms) row("server lat.", `${fmt(server.latency_ms)} ms`);
      row("viewers", String(server.viewers));
      const d = (server.delivery || []).find((x) => x.variant === variant);
      if (d) {
        for (const e of d.encoders || []) {
          if (e.viewers > 0) row(`encode ${e.codec}`, `${fmt(e.avg_enc_ms)} ms · ${e.viewers} viewer${e.viewers === 1 ? "" : "s"}`);
        }
        row("conv. / drops", `${fmt(d.last_conv_ms)} ms / ${d.drops}`);
      }
    }
    const pc = viewer && viewer.pc;
    if (pc) {
      const rep = await pc.getStats();
      let inb = null, codec = null, pair = null;
      rep.forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video") inb = s;
        if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s;
      });
      if (inb && inb.codecId) codec = rep.get(inb.codecId);
      head("browser");
      if (inb) {
        row("codec", codec ? codec.mimeType.replace("video/", "") : "–");
        row("decoded", `${fmtSize(inb.frameWidth, inb.frameHeight)}`);
        row("frames", `${inb.framesDecoded || 0} (${fmt(inb.framesPerSecond || 0)} fps)`);
        if (last && inb.timestamp > last.timestamp) {
          const kbps = (8 * (inb.bytesReceived - last.bytesReceived)) / (inb.timestamp - last.timestamp);
          row("bitrate", `${fmt(kbps, 0)} kbps`);
        }
        if (inb.jitterBufferEmittedCount) row("jitter buf.", `${fmt((1000 * inb.jitterBufferDelay) / inb.jitterBufferEmittedCount)} ms`);
        row("lost / dropped", `${inb.packetsLost || 0} / ${inb.framesDropped || 0}`);
        last = inb;
      }
      if (pair && pair.currentRoundTripTime !== undefined) row("rtt", `${fmt(1000 * pair.currentRoundTripTime)} ms`);
    }
    statsEl.innerHTML = rows.join("");
  }

  refreshServer();
  setInterval(refreshServer, 2000);
  setInterval(refreshStats, 1000);
  play();
})();
