// danstream page helpers: the stream list and the WHEP client used by the player.
"use strict";
window.danstream = (() => {
  const fmtSize = (w, h) => (w && h ? `${w}×${h}` : "–");
  const fmt = (x, d = 1) => (typeof x === "number" && isFinite(x) ? x.toFixed(d) : "–");
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

  async function streams() {
    const r = await fetch("/api/streams", { cache: "no-store" });
    if (!r.ok) throw new Error(`/api/streams: HTTP ${r.status}`);
    return (await r.json()).streams || [];
  }

  async function index() {
    const grid = document.getElementById("grid");
    const cards = new Map();
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
      document.getElementById("summary").textContent = `${list.length} stream${list.length === 1 ? "" : "s"} · ${viewers} viewer${viewers === 1 ? "" : "s"}`;
      for (const s of list) {
        let c = cards.get(s.name);
        if (!c) {
          c = document.createElement("a");
          c.className = "card";
          c.href = `/streams/${encodeURIComponent(s.name)}`;
          c.innerHTML = `<img class="thumb" alt=""><div class="body"><div class="row"><span class="name"></span><span class="pill"></span></div><div class="meta"></div><div class="meta src"></div></div>`;
          grid.appendChild(c);
          cards.set(s.name, c);
        }
        c.querySelector(".name").textContent = s.name;
        const pill = c.querySelector(".pill");
        pill.textContent = s.state;
        pill.className = `pill ${s.state}`;
        c.querySelector(".meta").textContent =
          `${fmtSize(s.input_width, s.input_height)} → ${fmtSize(s.output_width, s.output_height)} · ×${s.scale || "?"} · ${fmt(s.fps_out)} fps · ${s.viewers} watching`;
        c.querySelector(".src").textContent = `${s.model || ""}  ${s.source || ""}`;
        // Live thumbnail: a fresh snapshot every few seconds (skipped when no frame yet).
        const img = c.querySelector(".thumb");
        const probe = new Image();
        probe.onload = () => { img.src = probe.src; };
        probe.src = `/api/streams/${encodeURIComponent(s.name)}/snapshot.jpg?t=${Date.now()}`;
      }
    }
    await refresh();
    setInterval(refresh, 3000);
  }

  // WHEP (RFC 9725) viewer: recvonly video, complete offer (no trickle).
  class WHEPViewer {
    constructor(url) { this.url = url; this.pc = null; this.location = null; }
    async connect(video, onState) {
      const pc = new RTCPeerConnection();
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
      const r = await fetch(this.url, { method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp });
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
      if (loc) { try { await fetch(loc, { method: "DELETE", keepalive: true }); } catch (_) { /* server gone */ } }
    }
  }

  return { index, streams, WHEPViewer, fmt, fmtSize, esc };
})();
