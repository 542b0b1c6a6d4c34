// Shared by the browser probes (player.mjs, compare.mjs, latency.mjs): argument
// parsing, Debian's headless Chromium with the flags this machine needs, and a
// record of every RTCPeerConnection a page creates.
import { chromium } from 'playwright-core';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// args returns the URL (first argument) and an option reader: opt('--name', default).
export function args(usage) {
  const a = process.argv.slice(2);
  if (!a[0]) { console.error(`usage: ${usage}`); process.exit(2); }
  const opt = (name, def) => { const i = a.indexOf(name); return i >= 0 ? a[i + 1] : def; };
  return { url: a[0], opt };
}

// launch starts Chromium with a fresh profile. Without the background-networking flags
// Chromium tries hosts this closed network refuses; plain CLI flags cannot play WebRTC.
// noUDP makes Chromium's WebRTC refuse UDP altogether (the IP handling policy an
// administrator sets for networks that block UDP): only ICE-TCP can connect.
export async function launch({ noUDP = false } = {}) {
  const userDataDir = mkdtempSync(join(tmpdir(), 'danstream-chromium-'));
  if (noUDP) {
    // The profile preference behind Chromium's WebRtcIPHandling policy (and the
    // extension API chrome.privacy.network.webRTCIPHandlingPolicy).
    mkdirSync(join(userDataDir, 'Default'), { recursive: true });
    writeFileSync(join(userDataDir, 'Default', 'Preferences'),
      JSON.stringify({ webrtc: { ip_handling_policy: 'disable_non_proxied_udp' } }));
  }
  const browser = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required'],
  });
  const page = browser.pages()[0] || await browser.newPage();
  const logs = [];
  page.on('console', m => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', e => logs.push(`pageerror: ${e.message}`));
  const close = async () => {
    await browser.close();
    rmSync(userDataDir, { recursive: true, force: true });
  };
  return { page, logs, close };
}

// recordPeerConnections keeps every RTCPeerConnection the page makes in window.__pcs
// (whatever the page's own code calls it); with codec ('VP8', 'H264') the page's video
// offers are restricted to that codec so a test exercises that path.
export async function recordPeerConnections(page, codec) {
  await page.addInitScript((codec) => {
    const Orig = window.RTCPeerConnection;
    window.__pcs = [];
    window.RTCPeerConnection = function (...a) {
      const pc = new Orig(...a);
      window.__pcs.push(pc);
      if (codec) {
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
}
