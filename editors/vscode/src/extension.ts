// Entry point: builds the log, client, status bar and commands and wires them together; nothing else.

import * as vscode from "vscode";

import { currentSettings, ServerClient } from "./client";
import { registerCommands } from "./commands";
import { NextEditView } from "./nextEditView";
import { MACHINE_KEYS, SECTION } from "./settings";
import { StatusBar } from "./statusBar";

// Read only when the server starts: the launch command, and the machine keys sent in initializationOptions.
const RESTART_KEYS = ["server.command", "server.python", "server.extraArgs", ...MACHINE_KEYS].map(
  (key) => `${SECTION}.${key}`,
);

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const log = vscode.window.createOutputChannel("Diffusion Copilot", { log: true });
  const trace = vscode.window.createOutputChannel("Diffusion Copilot Trace", { log: true });
  const stats = vscode.window.createOutputChannel("Diffusion Copilot Stats");
  const client = new ServerClient(log, trace);
  const statusBar = new StatusBar(currentSettings().enable);
  context.subscriptions.push(
    log,
    trace,
    stats,
    client,
    statusBar,
    client.onDidChangeState((state) => statusBar.setClientState(state)),
    client.onDidReceiveStatus((status) => statusBar.setServerStatus(status)),
    client.onDidChooseServer((source) => statusBar.setServerSource(source)),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (RESTART_KEYS.some((key) => event.affectsConfiguration(key))) {
        void client.restart();
      } else if (event.affectsConfiguration(SECTION)) {
        statusBar.setEnabled(currentSettings().enable);
        void client.notifySettingsChanged();
      }
    }),
    ...registerCommands({ client, log, stats }),
    ...new NextEditView(client, log).register(),
  );
  await client.start();
}

export function deactivate(): void {
  // The client is in context.subscriptions; VS Code disposes it, which stops the server.
}
