// Load each HTML page given on the command line in headless Chromium (Debian's, driven by
// playwright-core) at 1280 px and check what a reader sees:
//   - no console message, page error or failed request (the page has no script; a CSP
//     violation or a fetch would show here),
//   - every chart (`.chart`, with its `data-points`) draws at least two data points, and
//     no <svg> sits outside a chart frame,
//   - no main table is wider than its section and the page has no horizontal scrollbar,
// then save a full-page screenshot and one of the first screen (what a user sees first).
// Usage: node report_chromium.js OUT_DIR NAME=PAGE.html ...   (exit 1 on any failure)
const { chromium } = require('playwright-core');
const path = require('path');

(async () => {
  const [out, ...pages] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  let failed = 0;
  for (const spec of pages) {
    const [name, file] = spec.split('=');
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const problems = [];
    page.on('console', (m) => problems.push(`console ${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
    await page.goto('file://' + path.resolve(file), { waitUntil: 'load' });
    const facts = await page.evaluate(() => {
      const charts = [...document.querySelectorAll('.chart')].map((d) => ({
        id: d.id, points: Number(d.dataset.points), svgs: d.querySelectorAll('svg').length,
      }));
      const loose = [...document.querySelectorAll('svg')].filter((s) => !s.closest('.chart')).length;
      const tables = [...document.querySelectorAll('section > table')].map((t) => ({
        section: t.closest('section').id,
        width: Math.ceil(t.getBoundingClientRect().width),
        room: t.closest('section').clientWidth,
      }));
      return {
        charts, loose, tables,
        pageWidth: document.documentElement.scrollWidth,
        viewport: window.innerWidth,
        first: [...document.querySelectorAll('section')].slice(0, 3).map((s) => s.id),
      };
    });
    for (const c of facts.charts) {
      if (!(c.points >= 2)) problems.push(`chart ${c.id} draws ${c.points} data point(s)`);
      if (c.svgs !== 1) problems.push(`chart ${c.id} holds ${c.svgs} svg elements`);
    }
    if (facts.loose) problems.push(`${facts.loose} svg element(s) outside a chart frame`);
    for (const t of facts.tables) {
      if (t.width > t.room) problems.push(`table in #${t.section} is ${t.width}px in ${t.room}px`);
    }
    if (facts.pageWidth > facts.viewport) {
      problems.push(`page is ${facts.pageWidth}px wide at a ${facts.viewport}px window`);
    }
    await page.screenshot({ path: path.join(out, `${name}.png`), fullPage: true });
    await page.screenshot({ path: path.join(out, `${name}.first-screen.png`) });
    const summary = `${name}: ${facts.charts.length} charts (points ${facts.charts.map((c) => c.points).join(', ')}), `
      + `${facts.tables.length} main tables, first sections ${facts.first.join(', ')}`;
    if (problems.length) {
      failed++;
      console.error(`report_chromium: FAIL: ${summary}`);
      for (const p of problems) console.error(`  ${p}`);
    } else {
      console.log(`report_chromium: ok: ${summary}`);
    }
    await page.close();
  }
  await browser.close();
  process.exit(failed ? 1 : 0);
})().catch((e) => { console.error(`report_chromium: FAIL: ${e.stack || e}`); process.exit(1); });
