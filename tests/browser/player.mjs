// Opens a danstream player page in Debian's headless Chromium and reports what
// the browser's own WebRTC stack decoded, as one JSON line on stdout.
//   node player.mjs URL [--screenshot FILE] [--timeout-ms N] [--codec VP8|H264] [--click SELECTOR]
// It records every RTCPeerConnection the page creates (whatever the page's code
// calls it) and polls getStats() until video frames have been decoded.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = process.argv.slice(2);
const url = args[0];
const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; };
const screenshot = opt('--screenshot');
const timeoutMs = Number(opt('--timeout-ms', '30000'));
const codec = opt('--codec');
const click = opt('--click');
if (!url) { console.error('usage: node player.mjs URL [--screenshot FILE]'); process.exit(2); }

const userDataDir = mkdtempSync(join(tmpdir(), 'danstream-chromium-'));
const browser = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1400, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required'],
});
let result = { ok: false };
try {
  const page = browser.pages()[0] || await browser.newPage();
  const logs = [];
  page.on('console', m => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', e => logs.push(`pageerror: ${e.message}`));
  await page.addInitScript((codec) => {
    const Orig = window.RTCPeerConnection;
    window.__pcs = [];
    window.RTCPeerConnection = function (...a) {
      const pc = new Orig(...a);
      window.__pcs.push(pc);
      if (codec) {
        // Restrict the offer to one codec so the test exercises that path.
        const origAdd = pc.addTransceiver.bind(pc);
        pc.addTransceiver = (kind, init) => {
          const t = origAdd(kind, init);
          if (kind === 'video' && t.setCodecPreferences) {
            const caps = RTCRtpReceiver.getCapabilities('video').codecs
              .filter(c => c.mimeType.toLowerCase() === ('video/' + codec).toLowerCase());
            if (caps.length) t.setCodecPreferences(caps);
          }
          return t;
        };
      }
      return pc;
    };
    window.RTCPeerConnection.prototype = Orig.prototype;
  }, codec || null);
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
        stats.forEach(s => {
          if (s.type === 'inbound-rtp' && s.kind === 'video') {
            out.videos.push({ framesDecoded: s.framesDecoded || 0, frameWidth: s.frameWidth || 0,
              frameHeight: s.frameHeight || 0, codec: codecs[s.codecId] || '', state: pc.connectionState });
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
  await browser.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
