// Opens a page in headless Chromium and waits until the text of every element
// matching --selector contains --want (or the timeout passes); prints
// {"ok": bool, "texts": [...], "logs": [...]} as JSON.
//   node text.mjs URL --selector CSS --want TEXT [--timeout-ms 30000]
import { args, launch } from './lib.mjs';

const { url, opt } = args('node text.mjs URL --selector CSS --want TEXT [--timeout-ms N]');
const selector = opt('--selector', 'body');
const want = opt('--want', '');
const timeout = Number(opt('--timeout-ms', '30000'));
const { page, logs, close } = await launch();
let texts = [];
let ok = false;
try {
  await page.goto(url);
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    texts = await page.$$eval(selector, els => els.map(e => e.textContent));
    if (texts.some(t => t.includes(want))) { ok = true; break; }
    await page.waitForTimeout(250);
  }
} catch (e) {
  logs.push(`probe: ${e.message}`);
} finally {
  await close();
}
console.log(JSON.stringify({ ok, texts, logs }));
