// Opens a danstream player page in compare mode in Debian's headless Chromium
// and reports, as one JSON line on stdout, what the page shows:
//   node compare.mjs URL [--screenshot FILE] [--zoom-screenshot FILE] [--timeout-ms N]
// - both <video>s (original, enhanced): decoded size and frames;
// - the divider position, and that keyboard and mouse move it;
// - the page's alignment state (RTP timeline match, residual offset);
// - a grab of the compare canvas at an instant it shows one paired frame: which
//   variant each side of the divider matches, the high-frequency energy (mean
//   |Laplacian| of luma) of a band each side, the same bands in both frames of
//   the pair, and how alike the pair's two frames are at thumbnail size (the
//   same capture instant gives nearly the same small picture).
import { args, launch } from './lib.mjs';

const { url, opt } = args('node compare.mjs URL [--screenshot FILE] [--zoom-screenshot FILE]');
const screenshot = opt('--screenshot');
const zoomShot = opt('--zoom-screenshot');
const timeoutMs = Number(opt('--timeout-ms', '60000'));

const { page, logs, close } = await launch();
const result = { ok: false };
try {
  await page.goto(url, { waitUntil: 'load' });
  const deadline = Date.now() + timeoutMs;
  const state = () => page.evaluate(() => {
    const v = (id) => {
      const el = document.getElementById(id);
      const q = el.getVideoPlaybackQuality ? el.getVideoPlaybackQuality() : { totalVideoFrames: 0 };
      return { id, width: el.videoWidth, height: el.videoHeight, frames: q.totalVideoFrames, visible: getComputedStyle(el).visibility };
    };
    const p = window.danstreamPlayer;
    return { mode: p && p.mode, split: p && p.split, align: p && p.align(), videos: [v('video-original'), v('video-enhanced')],
      slider: Number(document.getElementById('slider').getAttribute('aria-valuenow')) };
  });
  // Both decode, and the page has matched the two RTP timelines.
  let s;
  while (Date.now() < deadline) {
    s = await state();
    if (s.videos.every(v => v.width > 0 && v.frames > 5) && s.align && s.align.locked && s.align.samples >= 5) break;
    await page.waitForTimeout(300);
  }
  result.before = s;

  // The divider follows the keyboard and the mouse.
  const slider = page.locator('#slider');
  await slider.focus();
  for (let i = 0; i < 5; i++) await page.keyboard.press('ArrowLeft');
  result.sliderAfterKeys = (await state()).slider;
  const box = await page.locator('#viewport').boundingBox();
  await page.mouse.move(box.x + box.width * 0.45, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2, { steps: 5 });
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2, { steps: 5 });
  await page.mouse.up();
  result.sliderAfterDrag = (await state()).slider;

  // One instant, both halves: wait for an enhanced frame while the original
  // shows the same capture instant, and draw both at once.
  result.grab = await page.evaluate(async () => {
    const p = window.danstreamPlayer;
    const canvas = document.getElementById('compare-canvas');
    for (let i = 0; i < 100 && !p.inStepNow(); i++) await new Promise(r => setTimeout(r, 100));
    const inStep = p.inStepNow();
    const W = canvas.width, H = canvas.height;
    const lum = (d, w, h, x0, bw) => {
      const y = new Float32Array(bw * h);
      for (let r = 0; r < h; r++) for (let c = 0; c < bw; c++) {
        const i = 4 * (r * w + x0 + c);
        y[r * bw + c] = 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
      }
      return y;
    };
    // Mean |Laplacian| of luma over a band of columns: high-frequency energy.
    const hf = (img, x0, bw) => {
      const y = lum(img.data, img.width, img.height, x0, bw), h = img.height;
      let sum = 0, n = 0;
      for (let r = 1; r < h - 1; r++) for (let c = 1; c < bw - 1; c++) {
        const i = r * bw + c;
        sum += Math.abs(4 * y[i] - y[i - 1] - y[i + 1] - y[i - bw] - y[i + bw]); n++;
      }
      return sum / n;
    };
    // What the page shows: the compare canvas, read at the instant it shows one pair.
    const shown = canvas.getContext('2d').getImageData(0, 0, W, H);
    const pair = p.pairImages(W, H);
    const small = p.pairImages(64, 36);
    const cut = Math.round(p.split * W), band = Math.round(W / 5);
    let diff = 0;
    for (let i = 0; i < small.original.data.length; i += 4) {
      for (let k = 0; k < 3; k++) diff += Math.abs(small.original.data[i + k] - small.enhanced.data[i + k]) / 3;
    }
    // The canvas left of the divider must be the original frame, right of it the enhanced one.
    const sameAs = (a, b, x0, x1) => {
      let d = 0, n = 0;
      for (let r = 0; r < H; r += 7) for (let c = x0; c < x1; c += 7) {
        const i = 4 * (r * W + c);
        d += Math.abs(a.data[i] - b.data[i]) + Math.abs(a.data[i + 1] - b.data[i + 1]) + Math.abs(a.data[i + 2] - b.data[i + 2]); n += 3;
      }
      return d / n;
    };
    return {
      width: W, height: H, cut, band, inStep, visible: !canvas.hidden, rtp: pair.rtp, delta: pair.delta,
      composite: { left: hf(shown, cut - band, band), right: hf(shown, cut, band) },
      original: { left: hf(pair.original, cut - band, band), right: hf(pair.original, cut, band) },
      enhanced: { left: hf(pair.enhanced, cut - band, band), right: hf(pair.enhanced, cut, band) },
      leftVsOriginal: sameAs(shown, pair.original, 0, cut), leftVsEnhanced: sameAs(shown, pair.enhanced, 0, cut),
      rightVsEnhanced: sameAs(shown, pair.enhanced, cut, W), rightVsOriginal: sameAs(shown, pair.original, cut, W),
      thumbDiff: diff / (small.original.data.length / 4), align: p.align(),
    };
  });
  if (screenshot) { await page.evaluate(() => { const s = document.getElementById('stats'); if (s.hidden) document.getElementById('toggle-stats').click(); }); await page.waitForTimeout(1200); await page.screenshot({ path: screenshot }); }
  if (zoomShot) {
    await page.evaluate(() => { const b = document.getElementById('viewport').getBoundingClientRect(); window.danstreamPlayer.zoomAt(4, b.width * 0.5, b.height * 0.2); });
    await page.waitForTimeout(1200);
    await page.screenshot({ path: zoomShot });
    result.zoom = await page.evaluate(() => ({ zoom: window.danstreamPlayer.zoom, minimap: !document.getElementById('minimap').hidden }));
  }
  // Wheel zooms, a double-click resets. The point is on the picture right of the divider:
  // the stats panel (top left, as wide as its longest line) and the minimap (bottom right)
  // are controls of their own, not the picture.
  {
    const b = await page.locator('#viewport').boundingBox();
    await page.mouse.move(b.x + b.width * 0.7, b.y + b.height * 0.3);
    await page.mouse.dblclick(b.x + b.width * 0.7, b.y + b.height * 0.3);
    const z0 = await page.evaluate(() => window.danstreamPlayer.zoom);
    await page.mouse.wheel(0, -400);
    await page.waitForTimeout(300);
    const z1 = await page.evaluate(() => window.danstreamPlayer.zoom);
    await page.mouse.dblclick(b.x + b.width * 0.7, b.y + b.height * 0.3);
    const z2 = await page.evaluate(() => window.danstreamPlayer.zoom);
    result.wheel = { reset: z0, wheel: z1, dblclick: z2 };
  }
  result.after = await state();
  result.ok = result.after.videos.every(v => v.width > 0 && v.frames > 5);
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  result.logs = logs.slice(-20);
  await close();
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
