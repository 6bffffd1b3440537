// The commands the extension contributes: trigger, toggle, restart, show log, show stats, status menu.

import { execFile } from "node:child_process";
import * as vscode from "vscode";

import type { ServerClient } from "./client";
import {
  CHOOSE_PYTHON_COMMAND,
  currentDiscovery,
  currentPlaces,
  currentSettings,
  isExecutable,
  openServerSettings,
} from "./client";
import { workspacePythons } from "./discovery";
import { RESTART_ENGINE_COMMAND } from "./protocol";
import { describeLaunch, SECTION } from "./settings";
import { STATUS_MENU_COMMAND } from "./statusBar";

export interface CommandContext {
  readonly client: ServerClient;
  readonly log: vscode.LogOutputChannel;
  readonly stats: vscode.OutputChannel;
}

const STATS_TIMEOUT_MS = 30_000;

async function trigger(): Promise<void> {
  await vscode.commands.executeCommand("editor.action.inlineSuggest.trigger");
}

async function toggle(): Promise<void> {
  const config = vscode.workspace.getConfiguration(SECTION);
  // Write where the value in effect comes from, or a workspace value would keep overriding the change.
  const target =
    config.inspect<boolean>("enable")?.workspaceValue !== undefined
      ? vscode.ConfigurationTarget.Workspace
      : vscode.ConfigurationTarget.Global;
  await config.update("enable", !currentSettings().enable, target);
}

function showStats(context: CommandContext): Promise<void> {
  const found = currentDiscovery();
  const [command = "diffusion-copilot", ...prefix] = found.kind === "found" ? found.command : [];
  const launch = { command, args: [...prefix, "stats"] };
  context.log.info(`stats: ${describeLaunch(launch)}`);
  return new Promise((resolve) => {
    execFile(launch.command, [...launch.args], { timeout: STATS_TIMEOUT_MS }, (error, stdout, stderr) => {
      context.stats.clear();
      if (error) {
        context.stats.appendLine(`${describeLaunch(launch)} failed: ${error.message}`);
        context.stats.append(stderr);
      } else {
        context.stats.append(stdout);
      }
      context.stats.show(true);
      resolve();
    });
  });
}

async function statusMenu(context: CommandContext): Promise<void> {
  const isEnabled = currentSettings().enable;
  const items: (vscode.QuickPickItem & { readonly command: string })[] = [
    {
      label: isEnabled ? "$(circle-slash) Disable completions" : "$(check) Enable completions",
      command: "diffusionCopilot.toggle",
    },
    { label: "$(debug-restart) Restart server", command: "diffusionCopilot.restart" },
    { label: "$(refresh) Restart engine (loads the model again)", command: RESTART_ENGINE_COMMAND },
    { label: "$(output) Show log", command: "diffusionCopilot.showLog" },
    { label: "$(graph) Show completion statistics", command: "diffusionCopilot.showStats" },
    { label: "$(gear) Settings", command: "workbench.action.openSettings" },
  ];
  const choice = await vscode.window.showQuickPick(items, { title: "Diffusion Copilot" });
  if (choice === undefined) {
    return;
  }
  const args = choice.command === "workbench.action.openSettings" ? [SECTION] : [];
  context.log.debug(`status menu: ${choice.command}`);
  try {
    await vscode.commands.executeCommand(choice.command, ...args);
  } catch (error) {
    // The server's own commands exist only while it runs.
    const reason = error instanceof Error ? error.message : String(error);
    context.log.error(`${choice.command}: ${reason}`);
    void vscode.window.showWarningMessage(
      `Diffusion Copilot: ${choice.label.replace(/^\$\([\w-]+\) /, "")} failed: ${reason}`,
    );
  }
}

const CHECK_TIMEOUT_MS = 30_000;

/** Whether `python` can run the server (it imports the package's CLI); the reason when it cannot. */
function checkPython(python: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(python, ["-c", "import diffusion_copilot.server.cli"], { timeout: CHECK_TIMEOUT_MS }, (error, _, stderr) =>
      resolve(error ? (stderr.trim().split("\n").pop() ?? error.message) : undefined),
    );
  });
}

/** The Python extension's interpreter for the workspace, if that extension is installed. */
async function pythonExtensionInterpreter(): Promise<string | undefined> {
  const python = vscode.extensions.getExtension<{
    environments?: { getActiveEnvironmentPath(): { path: string } };
  }>("ms-python.python");
  try {
    const api = python?.isActive ? python.exports : await python?.activate();
    return api?.environments?.getActiveEnvironmentPath().path;
  } catch {
    return undefined;
  }
}

/** A quick pick of Pythons (the workspace's .venv/venv, the Python extension's choice, or browse); the chosen
 * one is checked and written to `server.python` at user level, which is the remote machine's settings in a remote
 * window (the setting is machine-scoped), never to the workspace. */
async function choosePython(context: CommandContext): Promise<void> {
  const folders = (vscode.workspace.workspaceFolders ?? []).map((folder) => folder.uri.fsPath);
  const items: (vscode.QuickPickItem & { readonly python?: string })[] = workspacePythons(
    folders,
    currentPlaces(),
    isExecutable,
  ).map((python) => ({ label: python, description: "this workspace's virtual environment", python }));
  const fromExtension = await pythonExtensionInterpreter();
  if (fromExtension !== undefined && !items.some((item) => item.python === fromExtension)) {
    items.push({ label: fromExtension, description: "selected in the Python extension", python: fromExtension });
  }
  items.push({ label: "$(folder-opened) Browse…", description: "a Python with the diffusion-copilot package" });
  const choice = await vscode.window.showQuickPick(items, {
    title: "Diffusion Copilot: the Python that has the diffusion-copilot package",
  });
  let python = choice?.python;
  if (choice !== undefined && python === undefined) {
    const picked = await vscode.window.showOpenDialog({ canSelectMany: false, title: "Python interpreter" });
    python = picked?.[0]?.fsPath;
  }
  if (python === undefined) {
    return;
  }
  const problem = await checkPython(python);
  if (problem !== undefined) {
    context.log.error(`${python} cannot run the server: ${problem}`);
    void vscode.window.showErrorMessage(
      `Diffusion Copilot: ${python} cannot run the server (${problem}). Install the package into it ` +
        "(pip install -c constraints.txt . in a clone of the repository) or choose another Python.",
    );
    return;
  }
  context.log.info(`server.python set to ${python} (user settings of this machine)`);
  // A change of server.python restarts the server (extension.ts).
  await vscode.workspace.getConfiguration(SECTION).update("server.python", python, vscode.ConfigurationTarget.Global);
}

/** Registers every command; the returned disposables unregister them. */
export function registerCommands(context: CommandContext): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand("diffusionCopilot.trigger", trigger),
    vscode.commands.registerCommand("diffusionCopilot.toggle", toggle),
    vscode.commands.registerCommand("diffusionCopilot.restart", () => context.client.restart()),
    vscode.commands.registerCommand("diffusionCopilot.showLog", () => context.log.show()),
    vscode.commands.registerCommand("diffusionCopilot.showStats", () => showStats(context)),
    vscode.commands.registerCommand(STATUS_MENU_COMMAND, () => statusMenu(context)),
    vscode.commands.registerCommand(CHOOSE_PYTHON_COMMAND, () => choosePython(context)),
    vscode.commands.registerCommand("diffusionCopilot.openServerSettings", openServerSettings),
  ];
}
