// Drives code-server in headless Chromium (playwright-core) for tests/test_vscode_e2e.py. For each scenario it
// opens a file, types at the end of a line (Enter included) or over a word, waits for ghost text, then accepts it
// (one Tab), accepts one word (Ctrl+Right), cycles to another alternative (Alt+]) and accepts that, or dismisses it
// and an explicitly asked-for one; or waits for the next edit suggested away from the cursor, jumps to it (Tab) and
// applies it (Tab); and saves. Then it uses the status bar menu: statistics, disable, enable, restart.
// Every wait is on a page event or a file change, with a timeout. Prints one JSON object per step on stdout.
//
// Usage: node drive.js CONFIG.json
//   config: {url, chromium, screenshots, log_dir, timeouts_ms,
//            scenarios: [{name, file, line, column, replaces, typed, cursor, action, indented}]}
//   column: where typing starts on `line` (null: its end); replaces: the text there that typing replaces;
//   cursor: [line, character] once typed
//   action: "accept" | "acceptWord" | "cycle" | "dismissInvoked" | "nextEdit"
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { chromium } = require("playwright-core");

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const timeouts = config.timeouts_ms;
const GHOST = ".monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text";
const NEXT_EDIT_KEYS = /\(Tab to (jump, Tab to )?apply( all \d+)?\)$/; // the end of the extension's next-edit hint
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

// Opens the scenario's file with the cursor where typing starts, the text that typing replaces selected.
async function openAtTypingPlace(page, scenario) {
  await page.locator(".explorer-folders-view .monaco-list-row", { hasText: path.basename(scenario.file) }).click();
  await page.waitForSelector(`.tabs-container .tab.active[aria-label^="${path.basename(scenario.file)}"]`, {
    timeout: timeouts.editor,
  });
  await page.click(".monaco-editor .view-lines");
  await page.keyboard.press("Control+Home");
  for (let i = 0; i < scenario.line; i += 1) {
    await page.keyboard.press("ArrowDown"); // column 0 stays column 0
  }
  if (scenario.column === null) {
    await page.keyboard.press("End");
  } else {
    for (let i = 0; i < scenario.column; i += 1) {
      await page.keyboard.press("ArrowRight");
    }
  }
  for (let i = 0; i < scenario.replaces.length; i += 1) {
    await page.keyboard.press("Shift+ArrowRight");
  }
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

// The JSON after any of `markers` on the lines of the extension's log after `since` characters, oldest first.
function loggedAfter(markers, since) {
  const values = [];
  for (const line of extensionLog().slice(since).split("\n")) {
    const marker = markers.find((m) => line.includes(m));
    if (marker !== undefined) {
      try {
        values.push(JSON.parse(line.slice(line.indexOf(marker) + marker.length)));
      } catch {
        // the line is still being written: the next poll reads it whole
      }
    }
  }
  return values;
}

// The inline completion answers the extension logged at `where` (`file:line:char`) after `since` characters of log,
// oldest first, each as its list of items. Only completion lines: the next-edit answers logged at the same place
// (`next edit FILE:LINE:CHAR -> {"edits": [...]}`) are not completions.
function answersLogged(where, since) {
  return loggedAfter(
    ["automatic", "invoked"].map((trigger) => `completion (${trigger}) ${where} -> `),
    since,
  );
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

// `file:line:char` of the cursor once the scenario's text is typed.
function typedCursor(scenario) {
  return `${scenario.file}:${scenario.cursor[0]}:${scenario.cursor[1]}`;
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

// Types the scenario's text, waits for ghost text and acts on it.
async function completeAndAct(page, scenario) {
  const { ghostMs, trigger } = await typeUntilGhost(page, scenario);
  const ghost = await ghostText(page);
  await shot(page, `${scenario.name}-1-ghost`);
  report(`${scenario.name}:ghost`, { ghost, ghostMs, trigger, label: await statusLabel(page) });
  return act(page, scenario);
}

// The next-edit answer the extension logged at `where` after `since` characters of log (`{"edits": [...]}` as the
// server sent it), waiting for it.
async function nextEditAnswer(where, since) {
  const deadline = Date.now() + timeouts.nextEdit;
  for (;;) {
    const [answer] = loggedAfter([`next edit ${where} -> `], since);
    if (answer !== undefined) {
      return answer;
    }
    if (Date.now() > deadline) {
      throw new Error(`no next-edit answer for ${where} within ${timeouts.nextEdit} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// The next-edit hints shown (the text after a line, drawn by CSS), each with its 0-based line read by the line
// number beside it, once some are shown (`isShown`) or none are; false until then.
function hintsInDom([keysSource, isShown]) {
  const keys = new RegExp(keysSource);
  const numbers = Array.from(document.querySelectorAll(".monaco-editor .margin-view-overlays .line-numbers"));
  const hints = [];
  for (const el of document.querySelectorAll(".monaco-editor .view-lines .view-line span")) {
    for (const pseudo of ["::before", "::after"]) {
      const content = getComputedStyle(el, pseudo).content;
      // content is a CSS string: quoted, with its quotes and backslashes escaped
      const text = content.startsWith('"') ? JSON.parse(content) : "";
      if (keys.test(text)) {
        const top = el.closest(".view-line").getBoundingClientRect().top;
        const number = numbers.find((n) => Math.abs(n.getBoundingClientRect().top - top) < 2);
        hints.push({ text, line: number ? Number(number.textContent) - 1 : null });
      }
    }
  }
  return hints.length > 0 === isShown && hints;
}

async function waitForHints(page, isShown, timeoutMs) {
  const found = await page.waitForFunction(hintsInDom, [NEXT_EDIT_KEYS.source, isShown], { timeout: timeoutMs });
  return found.jsonValue();
}

// The cursor as the status bar shows it ("Ln 2, Col 5"), 0-based (on a line without tabs before it: the status bar
// counts a tab as its width); with `expected`, false until the cursor is there.
function cursorInDom(expected) {
  for (const item of document.querySelectorAll(".statusbar-item")) {
    const match = /^Ln (\d+), Col (\d+)$/.exec((item.textContent || "").trim());
    if (match) {
      const cursor = [Number(match[1]) - 1, Number(match[2]) - 1];
      return expected === null || (cursor[0] === expected[0] && cursor[1] === expected[1]) ? cursor : false;
    }
  }
  return expected === null ? null : false;
}

async function waitForCursor(page, position) {
  const expected = [position.line, position.character];
  const found = await page.waitForFunction(cursorInDom, expected, { timeout: timeouts.editor });
  return found.jsonValue();
}

// Waits for the automatic completion answered at `where` after `since` characters of log; hides its ghost text, which
// would take Tab before the next edit does. Its items.
async function hideCompletion(page, where, since) {
  const deadline = Date.now() + timeouts.ghost;
  let answers = answersLogged(where, since);
  while (answers.length === 0) {
    if (Date.now() > deadline) {
      throw new Error(`no completion answer for ${where} within ${timeouts.ghost} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    answers = answersLogged(where, since);
  }
  const items = answers[answers.length - 1];
  if (items.length > 0) {
    await page.waitForSelector(GHOST, { timeout: timeouts.ghost });
    await page.keyboard.press("Escape");
    await page.waitForSelector(GHOST, { state: "detached", timeout: timeouts.ghost });
  }
  return items;
}

// Types the scenario's edit, waits for the server's next-edit answer and its hint (an edit away from the cursor),
// then Tab jumps to the edit and Tab applies it.
async function jumpAndApply(page, scenario) {
  const where = typedCursor(scenario);
  const since = extensionLog().length;
  const typedAt = Date.now();
  await page.keyboard.type(scenario.typed);
  const answer = await nextEditAnswer(where, since);
  const [edit] = Array.isArray(answer?.edits) ? answer.edits : [];
  if (edit === undefined) {
    throw new Error(`the server suggested no next edit at ${where}: ${JSON.stringify(answer)}`);
  }
  const hints = await waitForHints(page, true, timeouts.ghost);
  const hintMs = Date.now() - typedAt;
  const completion = await hideCompletion(page, where, since);
  await shot(page, `${scenario.name}-1-hint`);
  report(`${scenario.name}:hint`, { answer, hints, hintMs, completion, label: await statusLabel(page) });

  await page.keyboard.press("Tab");
  const cursor = await waitForCursor(page, edit.range.start).catch(async (error) => {
    const now = {
      cursor: await page.evaluate(cursorInDom, null),
      hints: await page.evaluate(hintsInDom, [NEXT_EDIT_KEYS.source, true]),
    };
    throw new Error(`Tab did not jump to the edit (${JSON.stringify(now)}): ${error}`);
  });
  const jumpedHints = await waitForHints(page, true, timeouts.editor);
  await shot(page, `${scenario.name}-2-jumped`);
  report(`${scenario.name}:jumped`, { cursor, hints: jumpedHints });

  await page.keyboard.press("Tab");
  await waitForHints(page, false, timeouts.editor); // applied: the hint goes
  return {};
}

async function runScenario(page, scenario, isFirst) {
  await openAtTypingPlace(page, scenario);
  if (isFirst) {
    // The server may wait for a first document before it starts the engine.
    try {
      report("ready", { label: await waitForReady(page) });
    } finally {
      await shot(page, "00-status");
    }
  }
  const before = fs.readFileSync(scenario.file, "utf8");
  const extra =
    scenario.action === "nextEdit" ? await jumpAndApply(page, scenario) : await completeAndAct(page, scenario);
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
