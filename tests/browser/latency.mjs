// Measures the browser's share of glass-to-glass latency for a danstream
// stream: opens the player page in Debian's headless Chromium, lets it play,
// and reports as one JSON line on stdout
//  - from RTCPeerConnection.getStats() (inbound-rtp video, over the window):
//    mean jitter-buffer delay, decode time, processing delay (first packet
//    received -> decoded), assembly time, frames decoded/dropped, freezes;
//  - from requestVideoFrameCallback: per displayed frame, receiveTime ->
//    presentationTime (jitter buffer + decode + handing to the compositor)
//    and, relative to the fastest frame, the arrival delay against the RTP
//    timestamp (which danstream derives from the capture time).
//   node latency.mjs URL [--seconds N] [--warmup-seconds N] [--codec VP8|H264]
// URL is a player page, e.g. http://127.0.0.1:8080/streams/demo.
import { args, launch, recordPeerConnections } from './lib.mjs';

const { url, opt } = args('node latency.mjs URL [--seconds N] [--warmup-seconds N] [--codec VP8|H264]');
const seconds = Number(opt('--seconds', '20'));
const warmup = Number(opt('--warmup-seconds', '3'));
const codec = opt('--codec');
if (!(seconds > 0)) { console.error('--seconds must be > 0'); process.exit(2); }

const { page, logs, close } = await launch();
let result = { ok: false, url };
try {
  await recordPeerConnections(page, codec);
  await page.addInitScript(() => {
    // Per displayed frame, from requestVideoFrameCallback (on every <video>).
    window.__frames = [];
    window.__recording = false;
    const watch = (v) => {
      if (v.__watched || !v.requestVideoFrameCallback) return;
      v.__watched = true;
      const cb = (now, md) => {
        if (window.__recording && md.receiveTime !== undefined && md.rtpTimestamp !== undefined) {
          window.__frames.push({ rtp: md.rtpTimestamp, recv: md.receiveTime, pres: md.presentationTime,
            expected: md.expectedDisplayTime, w: md.width, h: md.height });
        }
        v.requestVideoFrameCallback(cb);
      };
      v.requestVideoFrameCallback(cb);
    };
    new MutationObserver(() => document.querySelectorAll('video').forEach(watch))
      .observe(document, { childList: true, subtree: true });
    document.addEventListener('DOMContentLoaded', () => document.querySelectorAll('video').forEach(watch));
  });

  const snapshot = () => page.evaluate(async () => {
    const out = [];
    for (const pc of window.__pcs) {
      const stats = await pc.getStats();
      const codecs = {};
      stats.forEach(s => { if (s.type === 'codec') codecs[s.id] = s.mimeType; });
      stats.forEach(s => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') {
          out.push({ state: pc.connectionState, codec: codecs[s.codecId] || '', t: s.timestamp,
            framesReceived: s.framesReceived || 0, framesDecoded: s.framesDecoded || 0,
            framesDropped: s.framesDropped || 0, frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0,
            jitterBufferDelay: s.jitterBufferDelay || 0, jitterBufferEmittedCount: s.jitterBufferEmittedCount || 0,
            jitterBufferTargetDelay: s.jitterBufferTargetDelay || 0, jitterBufferMinimumDelay: s.jitterBufferMinimumDelay || 0,
            totalDecodeTime: s.totalDecodeTime || 0, totalProcessingDelay: s.totalProcessingDelay || 0,
            totalAssemblyTime: s.totalAssemblyTime || 0, framesAssembledFromMultiplePackets: s.framesAssembledFromMultiplePackets || 0,
            totalInterFrameDelay: s.totalInterFrameDelay || 0, freezeCount: s.freezeCount || 0,
            totalFreezesDuration: s.totalFreezesDuration || 0, packetsLost: s.packetsLost || 0,
            nackCount: s.nackCount || 0, pliCount: s.pliCount || 0, jitter: s.jitter || 0 });
        }
      });
    }
    return out;
  });

  await page.goto(url, { waitUntil: 'load' });
  // Wait for decoded frames, then a warm-up (the first keyframe and the
  // jitter buffer's initial sizing are not the steady state).
  const deadline = Date.now() + 30000;
  let s0 = [];
  while (Date.now() < deadline) {
    s0 = await snapshot();
    if (s0.some(v => v.framesDecoded > 0)) break;
    await page.waitForTimeout(250);
  }
  if (!s0.some(v => v.framesDecoded > 0)) throw new Error('no decoded video frame within 30 s');
  await page.waitForTimeout(warmup * 1000);
  s0 = await snapshot();
  await page.evaluate(() => { window.__frames = []; window.__recording = true; });
  await page.waitForTimeout(seconds * 1000);
  const s1 = await snapshot();
  const frames = await page.evaluate(() => { window.__recording = false; return window.__frames; });

  const ms = x => Math.round(x * 1000 * 100) / 100;
  const per = (a, b, num, den) => {
    const d = (b[den] - a[den]);
    return d > 0 ? ms((b[num] - a[num]) / d) : null;
  };
  result.videos = s1.map((b, i) => {
    const a = s0[i] || {};
    return {
      codec: b.codec, state: b.state, size: `${b.frameWidth}x${b.frameHeight}`,
      window_s: Math.round((b.t - a.t) / 10) / 100,
      fps_decoded: Math.round((b.framesDecoded - a.framesDecoded) / ((b.t - a.t) / 1000) * 100) / 100,
      frames_decoded: b.framesDecoded - a.framesDecoded, frames_dropped: b.framesDropped - a.framesDropped,
      jitter_buffer_ms: per(a, b, 'jitterBufferDelay', 'jitterBufferEmittedCount'),
      jitter_buffer_target_ms: b.jitterBufferEmittedCount > 0 ? ms((b.jitterBufferTargetDelay - (a.jitterBufferTargetDelay || 0)) / (b.jitterBufferEmittedCount - a.jitterBufferEmittedCount)) : null,
      decode_ms: per(a, b, 'totalDecodeTime', 'framesDecoded'),
      processing_ms: per(a, b, 'totalProcessingDelay', 'framesDecoded'),
      assembly_ms: per(a, b, 'totalAssemblyTime', 'framesAssembledFromMultiplePackets'),
      freezes: b.freezeCount - a.freezeCount, freezes_ms: ms(b.totalFreezesDuration - a.totalFreezesDuration),
      packets_lost: b.packetsLost - a.packetsLost, nacks: b.nackCount - a.nackCount, plis: b.pliCount - a.pliCount,
      rtp_jitter_ms: ms(b.jitter),
    };
  });

  // requestVideoFrameCallback: receive -> presentation, and arrival vs RTP time.
  const q = (xs, p) => { if (!xs.length) return null; const y = [...xs].sort((m, n) => m - n); return Math.round(y[Math.max(0, Math.min(y.length - 1, Math.ceil(p * y.length) - 1))] * 100) / 100; };
  const toPres = frames.filter(f => f.pres > 0 && f.recv > 0).map(f => f.pres - f.recv);
  let rel = [];
  if (frames.length > 1) {
    let unwrapped = 0, last = frames[0].rtp;
    const d = frames.map((f, i) => {
      if (i > 0) { unwrapped += ((f.rtp - last) | 0); last = f.rtp; }
      return f.recv - unwrapped / 90;
    });
    const lo = Math.min(...d);
    rel = d.map(x => x - lo);
  }
  result.frames = {
    displayed: frames.length,
    receive_to_presentation_ms: { p50: q(toPres, 0.5), p95: q(toPres, 0.95), max: q(toPres, 1) },
    arrival_extra_delay_ms: { p50: q(rel, 0.5), p95: q(rel, 0.95), max: q(rel, 1) },
  };
  result.ok = result.videos.some(v => v.frames_decoded > 0);
  result.logs = logs.slice(-10);
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  await close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
