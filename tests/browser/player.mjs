// Opens a danstream player page in Debian's headless Chromium and reports what
// the browser's own WebRTC stack decoded, as one JSON line on stdout.
//   node player.mjs URL [--screenshot FILE] [--timeout-ms N] [--codec VP8|H264] [--click SELECTOR] [--no-udp]
// It records every RTCPeerConnection the page creates (whatever the page's code
// calls it) and polls getStats() until video frames have been decoded. Each video
// also reports the selected ICE pair (protocol, the server's port) and the page's
// ICE servers; --no-udp starts Chromium with UDP refused for WebRTC.
import { args, launch, recordPeerConnections } from './lib.mjs';

const { url, opt } = args('node player.mjs URL [--screenshot FILE] [--timeout-ms N] [--codec VP8|H264] [--click SELECTOR] [--no-udp]');
const screenshot = opt('--screenshot');
const timeoutMs = Number(opt('--timeout-ms', '30000'));
const codec = opt('--codec');
const click = opt('--click');

const { page, logs, close } = await launch({ noUDP: process.argv.includes('--no-udp') });
let result = { ok: false };
try {
  await recordPeerConnections(page, codec);
  await page.goto(url, { waitUntil: 'load' });
  if (click) await page.click(click);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    result = await page.evaluate(async () => {
      const out = { ok: false, peerConnections: window.__pcs.length, videos: [] };
      for (const pc of window.__pcs) {
        const stats = await pc.getStats();
        const codecs = {};
        stats.forEach(s => { if (s.type === 'codec') codecs[s.id] = s.mimeType; });
        // The pair ICE selected: what the media really flows over.
        let pair = null;
        stats.forEach(s => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId); });
        const cand = (id) => { const c = id && stats.get(id); return c ? { protocol: c.protocol, port: c.port, address: c.address, type: c.candidateType } : null; };
        const selected = pair ? { local: cand(pair.localCandidateId), remote: cand(pair.remoteCandidateId) } : null;
        const iceServers = (pc.getConfiguration().iceServers || []).map(s => ({ urls: [].concat(s.urls), username: s.username || '' }));
        stats.forEach(s => {
          if (s.type === 'inbound-rtp' && s.kind === 'video') {
            out.videos.push({ framesDecoded: s.framesDecoded || 0, frameWidth: s.frameWidth || 0,
              frameHeight: s.frameHeight || 0, codec: codecs[s.codecId] || '', state: pc.connectionState, selected, iceServers });
          }
        });
      }
      out.ok = out.videos.some(v => v.framesDecoded > 0 && v.frameWidth > 0);
      return out;
    });
    if (result.ok && result.videos.every(v => v.framesDecoded > 5)) break;
    await page.waitForTimeout(250);
  }
  // Let the picture settle for a screenshot that shows what a person would see.
  if (screenshot) { await page.waitForTimeout(1000); await page.screenshot({ path: screenshot }); }
  result.logs = logs.slice(-20);
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  await close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
