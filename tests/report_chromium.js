// Load each HTML page given on the command line in headless Chromium (Debian's, driven by
// playwright-core) at 1280 px and check what a reader sees:
//   - no console message, page error or failed request (the page has no script; a CSP
//     violation or a fetch would show here),
//   - every chart (`.chart`, with its `data-points`) draws at least two data points, and
//     no <svg> sits outside a chart frame,
//   - no main table is wider than its section and the page has no horizontal scrollbar,
// then save a full-page screenshot and one of the first screen (what a user sees first).
//   - every badge (the in-sample mark) is drawn, configuration labels stay short, and each
//     page's required elements (NAME=PAGE.html=SELECTOR,...) are there and visible,
// Usage: node report_chromium.js OUT_DIR NAME=PAGE.html[=SELECTOR,...] ...   (exit 1 on any failure)
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
    // NAME=PAGE.html[=SELECTOR,...]: the selectors must each match a visible element.
    const [name, file, need] = spec.split('=');
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const problems = [];
    page.on('console', (m) => problems.push(`console ${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
    await page.goto('file://' + path.resolve(file), { waitUntil: 'load' });
    const needed = need ? need.split(',') : [];
    const facts = await page.evaluate((needed) => {
      const charts = [...document.querySelectorAll('.chart')].map((d) => ({
        id: d.id, points: Number(d.dataset.points), svgs: d.querySelectorAll('svg').length,
      }));
      const loose = [...document.querySelectorAll('svg')].filter((s) => !s.closest('.chart')).length;
      const tables = [...document.querySelectorAll('section > table')].map((t) => ({
        section: t.closest('section').id,
        width: Math.ceil(t.getBoundingClientRect().width),
        room: t.closest('section').clientWidth,
      }));
      // Badges (the in-sample mark on accuracy figures) must be seen, not clipped away.
      const badges = [...document.querySelectorAll('.badge')]
        .filter((b) => b.getBoundingClientRect().width === 0).length;
      const missing = needed.filter((sel) => {
        const e = document.querySelector(sel);
        return !e || e.getBoundingClientRect().width === 0;
      });
      // Configuration rows are named by what varies, not by the whole id (issue 17).
      const longLabels = [...document.querySelectorAll('#configs td[title]')]
        .filter((td) => td.textContent.length > 60).map((td) => td.textContent);
      return {
        charts, loose, tables, badges, missing, longLabels,
        pageWidth: document.documentElement.scrollWidth,
        viewport: window.innerWidth,
        first: [...document.querySelectorAll('section')].slice(0, 3).map((s) => s.id),
      };
    }, needed);
    for (const c of facts.charts) {
      if (!(c.points >= 2)) problems.push(`chart ${c.id} draws ${c.points} data point(s)`);
      if (c.svgs !== 1) problems.push(`chart ${c.id} holds ${c.svgs} svg elements`);
    }
    if (facts.loose) problems.push(`${facts.loose} svg element(s) outside a chart frame`);
    if (facts.badges) problems.push(`${facts.badges} badge(s) drawn with no width`);
    for (const sel of facts.missing) problems.push(`no visible ${sel}`);
    for (const l of facts.longLabels) problems.push(`configuration label '${l}' is over 60 characters`);
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
