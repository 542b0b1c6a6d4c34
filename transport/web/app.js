// danstream page helpers: the stream list and the WHEP client used by the player.
"use strict";
window.danstream = (() => {
  const fmtSize = (w, h) => (w && h ? `${w}×${h}` : "–");
  const fmt = (x, d = 1) => (typeof x === "number" && isFinite(x) ? x.toFixed(d) : "–");
  // A page opened as ...?token=T (a shared link, when the server requires auth) passes the
  // token on to every request it makes; browsers cannot add an Authorization header to
  // <img> loads or navigations.
  const TOKEN = new URLSearchParams(location.search).get("token");
  const authed = (u) => {
    if (!TOKEN) return u;
    const x = new URL(u, location.href);
    x.searchParams.set("token", TOKEN);
    return x.origin === location.origin ? x.pathname + x.search : x.toString();
  };
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

  async function streams() {
    const r = await fetch(authed("/api/streams"), { cache: "no-store" });
    if (!r.ok) throw new Error(`/api/streams: HTTP ${r.status}`);
    return (await r.json()).streams || [];
  }

  async function index() {
    const grid = document.getElementById("grid");
    const cards = new Map();
    const pct = (x) => (typeof x === "number" && isFinite(x) ? `${Math.round(100 * x)}%` : "–");
    function card(s) {
      const c = document.createElement("article");
      c.className = "card";
      const href = `/streams/${encodeURIComponent(s.name)}`;
      c.innerHTML = `
        <a class="thumbbox" href="${authed(href + "?mode=compare")}" aria-label="Open ${esc(s.name)}">
          <span class="ph">waiting for the first frame…</span><img alt="" hidden><span class="live" hidden>LIVE</span><span class="scale"></span></a>
        <div class="body">
          <div class="row"><span class="name"></span><span class="pill"></span></div>
          <div class="facts">
            <div class="fact"><b class="f-in">–</b><span>input</span></div>
            <div class="fact"><b class="f-out">–</b><span>output</span></div>
            <div class="fact"><b class="f-fps">–</b><span>fps</span></div>
            <div class="fact"><b class="f-view">–</b><span>viewers</span></div>
          </div>
          <div class="meta m-sr"></div>
          <div class="meta m-src"></div>
          <div class="err" hidden></div>
          <div class="actions">
            <a href="${authed(href + "?mode=compare")}"><button class="primary">Compare</button></a>
            <a href="${authed(href + "?mode=enhanced")}"><button>Watch enhanced</button></a>
          </div>
        </div>`;
      grid.appendChild(c);
      return c;
    }
    // Live thumbnail: load the next snapshot off-screen, then swap, so a slow
    // or failed snapshot never blanks the card.
    function thumb(c, s) {
      if (document.hidden || c.loading || s.state !== "running") return;
      c.loading = true;
      const probe = new Image();
      probe.onload = () => {
        const img = c.querySelector("img");
        img.src = probe.src; img.hidden = false;
        c.querySelector(".ph").hidden = true;
        c.querySelector(".live").hidden = false;
        c.loading = false;
      };
      probe.onerror = () => { c.loading = false; };
      probe.src = authed(`/api/streams/${encodeURIComponent(s.name)}/snapshot.jpg?t=${Date.now()}`);
    }
    async function refresh() {
      let list;
      try {
        list = await streams();
        document.getElementById("error").hidden = true;
      } catch (e) {
        const el = document.getElementById("error");
        el.textContent = `Cannot reach the server: ${e.message}`;
        el.hidden = false;
        return;
      }
      document.getElementById("empty").hidden = list.length > 0;
      const viewers = list.reduce((n, s) => n + (s.viewers || 0), 0);
      const running = list.filter((s) => s.state === "running").length;
      document.getElementById("summary").textContent =
        `${list.length} stream${list.length === 1 ? "" : "s"} · ${running} running · ${viewers} viewer${viewers === 1 ? "" : "s"}`;
      for (const s of list) {
        let c = cards.get(s.name);
        if (!c) { c = card(s); cards.set(s.name, c); }
        c.querySelector(".name").textContent = s.name;
        const pill = c.querySelector(".pill");
        pill.textContent = s.state;
        pill.className = `pill ${s.state}`;
        c.querySelector(".scale").textContent = s.scale ? `×${s.scale}` : "";
        c.querySelector(".f-in").textContent = fmtSize(s.input_width, s.input_height);
        c.querySelector(".f-out").textContent = fmtSize(s.output_width, s.output_height);
        c.querySelector(".f-fps").textContent = fmt(s.fps_out);
        c.querySelector(".f-view").textContent = String(s.viewers || 0);
        c.querySelector(".m-sr").textContent =
          `SR ${fmt(s.sr_ms, 0)} ms/frame · cache hit ${pct(s.cache_hit_rate)} · ${fmt(s.tiles_inferred_per_frame)} tiles/frame`;
        const src = c.querySelector(".m-src");
        src.textContent = `${s.model || "–"}${adaptedText(s)} · ${s.source || ""}${pairsText(s)}`;
        src.title = src.textContent;
        const err = c.querySelector(".err");
        err.textContent = s.error || "";
        err.hidden = !s.error;
        if (s.state !== "running") c.querySelector(".live").hidden = true;
        thumb(c, s);
      }
      for (const [n, c] of cards) if (!list.some((s) => s.name === n)) { c.remove(); cards.delete(n); }
    }
    await refresh();
    setInterval(refresh, 2000);
  }

  // Camera adaptation (issue 7): the running model's score on held-out pairs,
  // and the pair collection of a stream with a main source.
  function adaptedText(s) {
    const v = s.model_validation;
    return v ? ` (adapted: ${fmt(v.psnr_y_after, 2)} dB vs ${fmt(v.psnr_y_before, 2)} before, ${v.pairs} held-out pairs)` : "";
  }
  function pairsText(s) {
    const p = s.pairs;
    if (!p) return "";
    return ` · pairs ${p.on_disk} on disk, ${p.state}${p.error ? ": " + p.error : ""}`;
  }

  // STUN/TURN servers from RFC 9725 Link headers (<url>; rel="ice-server";
  // username="u"; credential="c"), as RTCPeerConnection's iceServers.
  function iceServersFromLinks(header) {
    const out = [];
    if (!header) return out;
    const links = [];
    let cur = "", quoted = false, inURL = false;
    for (let i = 0; i < header.length; i++) { // split on commas outside <...> and "..."
      const ch = header[i];
      if (quoted && ch === "\\") { cur += ch + (header[++i] || ""); continue; }
      if (ch === '"' && !inURL) quoted = !quoted;
      else if (ch === "<" && !quoted) inURL = true;
      else if (ch === ">" && !quoted) inURL = false;
      if (ch === "," && !quoted && !inURL) { links.push(cur); cur = ""; } else cur += ch;
    }
    links.push(cur);
    for (const l of links) {
      const m = l.match(/^\s*<([^>]*)>(.*)$/);
      if (!m) continue;
      const p = {};
      for (const x of m[2].matchAll(/;\s*([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))/g)) {
        p[x[1].toLowerCase()] = x[2] !== undefined ? x[2].replace(/\\(.)/g, "$1") : x[3].trim();
      }
      if (p.rel !== "ice-server") continue;
      const s = { urls: m[1] };
      if (p.username !== undefined) { s.username = p.username; s.credential = p.credential || ""; }
      out.push(s);
    }
    return out;
  }

  // WHEP (RFC 9725) viewer: recvonly video, complete offer (no trickle).
  class WHEPViewer {
    constructor(url) { this.url = url; this.pc = null; this.location = null; }
    async connect(video, onState) {
      // The server's STUN/TURN servers come before the offer (OPTIONS, as
      // MediaMTX's reader does), so that the offer's candidates use them.
      let iceServers = [];
      try {
        const o = await fetch(authed(this.url), { method: "OPTIONS", cache: "no-store" });
        iceServers = iceServersFromLinks(o.headers.get("Link"));
      } catch (_) { /* none: host candidates only */ }
      let pc;
      try { pc = new RTCPeerConnection({ iceServers }); } catch (e) {
        console.warn("ignoring the server's ICE servers:", e.message);
        pc = new RTCPeerConnection();
      }
      this.pc = pc;
      pc.addTransceiver("video", { direction: "recvonly" });
      pc.ontrack = (ev) => { video.srcObject = ev.streams[0] || new MediaStream([ev.track]); };
      pc.onconnectionstatechange = () => onState && onState(pc.connectionState);
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((resolve) => {
        if (pc.iceGatheringState === "complete") return resolve();
        const t = setTimeout(resolve, 1500); // host candidates come at once; don't wait on STUN
        pc.addEventListener("icegatheringstatechange", () => {
          if (pc.iceGatheringState === "complete") { clearTimeout(t); resolve(); }
        });
      });
      const r = await fetch(authed(this.url), { method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp });
      const body = await r.text();
      if (r.status !== 201) throw new Error(`WHEP ${r.status}: ${body.trim()}`);
      const loc = r.headers.get("Location");
      this.location = loc ? new URL(loc, new URL(this.url, window.location.href)).toString() : null;
      await pc.setRemoteDescription({ type: "answer", sdp: body });
    }
    async close() {
      const loc = this.location, pc = this.pc;
      this.location = null; this.pc = null;
      if (pc) pc.close();
      if (loc) { try { await fetch(authed(loc), { method: "DELETE", keepalive: true }); } catch (_) { /* server gone */ } }
    }
  }

  return { index, streams, WHEPViewer, iceServersFromLinks, fmt, fmtSize, esc, authed };
})();
