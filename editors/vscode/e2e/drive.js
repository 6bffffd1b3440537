// Drives code-server in headless Chromium (playwright-core) for tests/test_vscode_e2e.py. For each scenario it
// opens a file, types at the end of a line (Enter included), waits for ghost text, then accepts it (one Tab),
// accepts one word (Ctrl+Right), cycles to another alternative (Alt+]) and accepts that, or dismisses it and an
// explicitly asked-for one, and saves. Then it uses the status bar
// menu: statistics, disable, enable, restart.
// Every wait is on a page event or a file change, with a timeout. Prints one JSON object per step on stdout.
//
// Usage: node drive.js CONFIG.json
//   config: {url, chromium, screenshots, log_dir, timeouts_ms, scenarios: [{name, file, line, typed, action}]}
//   action: "accept" | "acceptWord" | "cycle" | "dismissInvoked"
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { chromium } = require("playwright-core");

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const timeouts = config.timeouts_ms;
const GHOST = ".monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text";
const STATUS = '.statusbar-item [aria-label^="Diffusion Copilot:"], .statusbar-item[aria-label^="Diffusion Copilot:"]';
const started = Date.now();

function report(step, fields = {}) {
  process.stdout.write(`${JSON.stringify({ step, ms: Date.now() - started, ...fields })}\n`);
}

function shot(page, name) {
  return page.screenshot({ path: path.join(config.screenshots, `${name}.png`) });
}

// Ghost pieces in reading order: the inline part of the cursor line, then the extra lines' view zone.
function ghostInDom(selector) {
  return Array.from(document.querySelectorAll(selector))
    .map((el) => ({ rect: el.getBoundingClientRect(), text: el.textContent }))
    .sort((a, b) => a.rect.top - b.rect.top || a.rect.left - b.rect.left)
    .map((piece) => piece.text)
    .join("");
}

async function ghostText(page) {
  return page.evaluate(ghostInDom, GHOST);
}

async function statusLabel(page) {
  const item = page.locator(STATUS);
  return (await item.count()) > 0 ? item.first().getAttribute("aria-label") : null;
}

async function waitForFileChange(file, before, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const check = () => {
      if (fs.readFileSync(file, "utf8") !== before) {
        watcher.close();
        resolve();
      } else if (Date.now() > deadline) {
        watcher.close();
        reject(new Error(`${file} did not change within ${timeoutMs} ms`));
      }
    };
    const watcher = fs.watch(path.dirname(file), check);
    const timer = setInterval(check, 100);
    watcher.on("close", () => clearInterval(timer));
  });
}

async function waitForReady(page) {
  // Ready, or a client that failed to start (terminal: no point in waiting for the timeout).
  const settled = await page.waitForFunction(
    (selector) => {
      const item = document.querySelector(selector);
      const label = item ? item.getAttribute("aria-label") : "";
      return /^Diffusion Copilot: (ready|failed)/.test(label) ? label : false;
    },
    STATUS,
    { timeout: timeouts.ready },
  );
  const label = await settled.jsonValue();
  if (label.startsWith("Diffusion Copilot: failed")) {
    throw new Error(`the extension did not start the server: ${label}`);
  }
  return label;
}

async function openAtLineEnd(page, scenario) {
  await page.locator(".explorer-folders-view .monaco-list-row", { hasText: path.basename(scenario.file) }).click();
  await page.waitForSelector(`.tabs-container .tab.active[aria-label^="${path.basename(scenario.file)}"]`, {
    timeout: timeouts.editor,
  });
  await page.click(".monaco-editor .view-lines");
  await page.keyboard.press("Control+Home");
  for (let i = 0; i < scenario.line; i += 1) {
    await page.keyboard.press("ArrowDown");
  }
  await page.keyboard.press("End");
}

// Hides the automatic suggestion, asks for one explicitly (Invoked: VS Code shows its answer at once) and
// dismisses that too: nothing is accepted.
async function dismissInvoked(page, scenario) {
  await page.keyboard.press("Escape");
  await page.waitForSelector(GHOST, { state: "detached", timeout: timeouts.ghost });
  const since = extensionLog().length;
  await triggerFromPalette(page);
  const outcome = await ghostOrEmpty(page, typedCursor(scenario), since);
  if (outcome !== "ghost") {
    throw new Error(`no ghost text for the invoked request (${outcome})`);
  }
  const invoked = await ghostText(page);
  await shot(page, `${scenario.name}-2-invoked`);
  await page.keyboard.press("Escape");
  await page.waitForSelector(GHOST, { state: "detached", timeout: timeouts.ghost });
  return { invoked };
}

async function act(page, scenario) {
  if (scenario.action === "dismissInvoked") {
    return dismissInvoked(page, scenario);
  }
  if (scenario.action === "accept") {
    await page.keyboard.press("Tab");
    return {};
  }
  if (scenario.action === "acceptWord") {
    await page.keyboard.press("Control+ArrowRight");
    return {};
  }
  // cycle: Alt+] shows the next alternative, asking for them first (an Invoked request) unless the ghost shown
  // already came from one; then the switch is immediate, so the ghost is read before the key is pressed.
  const shown = await page.$$eval(GHOST, (els) =>
    els
      .map((el) => el.textContent)
      .sort()
      .join(""),
  );
  await page.keyboard.press("Alt+]");
  await page.waitForFunction(
    ([selector, before]) => {
      const now = Array.from(document.querySelectorAll(selector))
        .map((el) => el.textContent)
        .sort()
        .join("");
      return now.length > 0 && now !== before;
    },
    [GHOST, shown],
    { timeout: timeouts.ghost },
  );
  const cycled = await ghostText(page);
  await shot(page, `${scenario.name}-2-cycled`);
  await page.keyboard.press("Tab");
  return { cycled };
}

// The extension's log files ("Diffusion Copilot.log" of each extension host) and their text.
function extensionLog() {
  return fs
    .readdirSync(config.log_dir, { recursive: true })
    .filter((name) => name.endsWith(path.join("diffusion-copilot.diffusion-copilot", "Diffusion Copilot.log")))
    .map((name) => fs.readFileSync(path.join(config.log_dir, name), "utf8"))
    .join("\n");
}

// The inline completion answers the extension logged at `where` (`file:line:char`) after `since` characters of log,
// oldest first, each as its list of items. Only completion lines: the next-edit answers logged at the same place
// (`next edit FILE:LINE:CHAR -> []`) are not completions.
function answersLogged(where, since) {
  const markers = ["automatic", "invoked"].map((trigger) => `completion (${trigger}) ${where} -> `);
  const answers = [];
  for (const line of extensionLog().slice(since).split("\n")) {
    const marker = markers.find((m) => line.includes(m));
    if (marker !== undefined) {
      try {
        answers.push(JSON.parse(line.slice(line.indexOf(marker) + marker.length)));
      } catch {
        // the line is still being written: the next poll reads it whole
      }
    }
  }
  return answers;
}

// Resolves true when the extension logs an empty answer at `where` after `since` characters of log, or false once
// `isDone()` says the race is over.
function emptyAnswer(where, since, isDone) {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      const hit = answersLogged(where, since).some((items) => items.length === 0);
      if (hit || isDone()) {
        clearInterval(timer);
        resolve(hit);
      }
    }, 100);
  });
}

// Runs "Diffusion Copilot: Trigger Inline Completion" from the command palette (an Invoked request).
async function triggerFromPalette(page) {
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input").first();
  await input.waitFor({ timeout: timeouts.editor });
  await input.fill(">Diffusion Copilot: Trigger Inline Completion");
  const rows = ".quick-input-widget .quick-input-list .monaco-list-row";
  await page.locator(rows, { hasText: "Trigger Inline Completion" }).first().waitFor({ timeout: timeouts.editor });
  await page.keyboard.press("Enter");
}

// Waits for ghost text, or for the extension to log an empty answer at `where`: "ghost" | "empty" | "timeout".
async function ghostOrEmpty(page, where, since) {
  let isDone = false;
  const outcome = await Promise.race([
    page.waitForSelector(GHOST, { timeout: timeouts.ghost }).then(
      () => "ghost",
      () => "timeout",
    ),
    emptyAnswer(where, since, () => isDone).then((hit) => (hit ? "empty" : "timeout")),
  ]);
  isDone = true;
  return outcome;
}

// `file:line:char` of the cursor once the scenario's text is typed (read before the file is saved).
function typedCursor(scenario) {
  const lineText = fs.readFileSync(scenario.file, "utf8").split("\n")[scenario.line];
  // `typed` may hold newlines (Enter), which leave the cursor at column 0 of a later line.
  const typedLines = scenario.typed.split("\n");
  return typedLines.length > 1
    ? `${scenario.file}:${scenario.line + typedLines.length - 1}:${typedLines[typedLines.length - 1].length}`
    : `${scenario.file}:${scenario.line}:${lineText.length + scenario.typed.length}`;
}

// The first item of the latest answer the extension logged at `where` after `since` characters of log, or null.
function firstItemLogged(where, since) {
  const answers = answersLogged(where, since);
  return answers.length === 0 ? null : (answers[answers.length - 1][0] ?? null);
}

// Types the scenario's text and waits for ghost text. If the automatic answer has no items (a random-weight
// model's text can post-process to nothing; the server caches that answer for this context), or the scenario
// needs a suggestion that starts with indentation (`indented`) and got another one, asks again with the Trigger
// command, whose request is Invoked: fresh alternatives without the latency budget. At most three times.
async function typeUntilGhost(page, scenario) {
  const where = typedCursor(scenario);
  let since = extensionLog().length;
  const typedAt = Date.now();
  await page.keyboard.type(scenario.typed);
  let outcome = await ghostOrEmpty(page, where, since);
  let trigger = "typed";
  // Whether the ghost shown lacks the indentation the scenario needs (its answer reaches the log file shortly).
  const unindented = async () => {
    if (!scenario.indented) {
      return false;
    }
    const deadline = Date.now() + timeouts.ghost;
    let item = firstItemLogged(where, since);
    while (item === null && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      item = firstItemLogged(where, since);
    }
    return item === null || !/^[ \t]/.test(item.insertText);
  };
  let attempts = 0;
  while (attempts < 3 && (outcome === "empty" || (outcome === "ghost" && (await unindented())))) {
    attempts += 1;
    report(`${scenario.name}:${outcome === "empty" ? "empty" : "unindented"}`);
    if (outcome === "ghost") {
      await page.keyboard.press("Escape");
      await page.waitForSelector(GHOST, { state: "detached", timeout: timeouts.ghost });
    }
    since = extensionLog().length;
    await triggerFromPalette(page);
    outcome = await ghostOrEmpty(page, where, since);
    trigger = "command";
  }
  if (outcome !== "ghost") {
    throw new Error(`no ghost text for ${where} (${outcome})`);
  }
  return { ghostMs: Date.now() - typedAt, trigger };
}

async function runScenario(page, scenario, isFirst) {
  await openAtLineEnd(page, scenario);
  if (isFirst) {
    // The server may wait for a first document before it starts the engine.
    try {
      report("ready", { label: await waitForReady(page) });
    } finally {
      await shot(page, "00-status");
    }
  }
  const before = fs.readFileSync(scenario.file, "utf8");
  const { ghostMs, trigger } = await typeUntilGhost(page, scenario);
  const ghost = await ghostText(page);
  await shot(page, `${scenario.name}-1-ghost`);
  report(`${scenario.name}:ghost`, { ghost, ghostMs, trigger, label: await statusLabel(page) });

  const extra = await act(page, scenario);
  await page.keyboard.press("Escape");
  await page.keyboard.press("Control+S");
  await waitForFileChange(scenario.file, before, timeouts.save);
  await page.waitForSelector(".tabs-container .tab.active:not(.dirty)", { timeout: timeouts.save });
  await shot(page, `${scenario.name}-3-saved`);
  report(`${scenario.name}:saved`, { text: fs.readFileSync(scenario.file, "utf8"), ...extra });
}

async function waitForLabel(page, pattern) {
  const found = await page.waitForFunction(
    ([selector, source]) => {
      const item = document.querySelector(selector);
      const label = item ? item.getAttribute("aria-label") : "";
      return new RegExp(source).test(label) ? label : false;
    },
    [STATUS, pattern],
    { timeout: timeouts.ready },
  );
  return found.jsonValue();
}

// Clicks the status bar item and picks the menu entry that contains `entry`; returns every entry's text.
async function pickFromStatusMenu(page, entry, screenshot) {
  await page.locator(STATUS).first().click();
  const rows = ".quick-input-widget .quick-input-list .monaco-list-row";
  const row = page.locator(rows, { hasText: entry }).first();
  await row.waitFor({ timeout: timeouts.editor });
  const entries = await page.$$eval(rows, (els) => els.map((el) => el.textContent.trim()));
  if (screenshot) {
    await shot(page, screenshot);
  }
  await row.click();
  return entries;
}

async function statusMenu(page) {
  const entries = await pickFromStatusMenu(page, "Show completion statistics", "menu-1-open");
  const stats = page.locator(".part.panel .view-lines", { hasText: "telemetry.sqlite3" }).first();
  await stats.waitFor({ timeout: timeouts.editor });
  await shot(page, "menu-2-stats");
  report("menu:stats", { entries, text: await stats.textContent() });

  await pickFromStatusMenu(page, "Disable completions");
  report("menu:disabled", { label: await waitForLabel(page, "^Diffusion Copilot: disabled") });
  await pickFromStatusMenu(page, "Enable completions");
  report("menu:enabled", { label: await waitForLabel(page, "^Diffusion Copilot: ready") });

  await pickFromStatusMenu(page, "Restart server");
  const during = await waitForLabel(page, "^Diffusion Copilot: (stopped|starting)");
  report("menu:restarted", { during, label: await waitForLabel(page, "^Diffusion Copilot: ready") });
}

async function main() {
  const browser = await chromium.launch({
    executablePath: config.chromium,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  try {
    await page.goto(config.url, { waitUntil: "domcontentloaded" });
    await page.waitForSelector(".monaco-workbench", { timeout: timeouts.workbench });
    report("workbench");
    for (const [index, scenario] of config.scenarios.entries()) {
      await runScenario(page, scenario, index === 0);
    }
    await statusMenu(page);
    report("done");
  } catch (error) {
    await shot(page, "99-failure").catch(() => undefined);
    report("error", {
      message: String(error && error.stack ? error.stack : error),
      label: await statusLabel(page).catch(() => null),
    });
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  report("error", { message: String(error) });
  process.exitCode = 1;
});
