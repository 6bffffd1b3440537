// The commands the extension contributes: trigger, toggle, restart, show log, show stats, status menu.

import { execFile } from "node:child_process";
import * as vscode from "vscode";

import type { ServerClient } from "./client";
import { currentSettings } from "./client";
import { RESTART_ENGINE_COMMAND } from "./protocol";
import { cliLaunch, describeLaunch, SECTION } from "./settings";
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
  const launch = cliLaunch(currentSettings(), ["stats"]);
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

/** Registers every command; the returned disposables unregister them. */
export function registerCommands(context: CommandContext): vscode.Disposable[] {
  return [
    vscode.commands.registerCommand("diffusionCopilot.trigger", trigger),
    vscode.commands.registerCommand("diffusionCopilot.toggle", toggle),
    vscode.commands.registerCommand("diffusionCopilot.restart", () => context.client.restart()),
    vscode.commands.registerCommand("diffusionCopilot.showLog", () => context.log.show()),
    vscode.commands.registerCommand("diffusionCopilot.showStats", () => showStats(context)),
    vscode.commands.registerCommand(STATUS_MENU_COMMAND, () => statusMenu(context)),
  ];
}
