// The status bar item: keeps the latest client state and server status and redraws from statusView.

import * as vscode from "vscode";

import type { ServerStatus } from "./protocol";
import { statusView, type ClientState } from "./statusView";

export const STATUS_MENU_COMMAND = "diffusionCopilot.statusMenu";

export class StatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private client: ClientState = { kind: "starting" };
  private status: ServerStatus | undefined;
  private isEnabled: boolean;
  private source: string | undefined; // which command runs the server, and where it was found

  constructor(isEnabled: boolean) {
    this.isEnabled = isEnabled;
    this.item = vscode.window.createStatusBarItem("diffusionCopilot.status", vscode.StatusBarAlignment.Right, 100);
    this.item.name = "Diffusion Copilot";
    this.item.command = STATUS_MENU_COMMAND;
    this.redraw();
    this.item.show();
  }

  setClientState(client: ClientState): void {
    this.client = client;
    if (client.kind !== "running") {
      this.status = undefined;
    }
    this.redraw();
  }

  setServerStatus(status: ServerStatus): void {
    this.status = status;
    this.redraw();
  }

  setServerSource(source: string): void {
    this.source = source;
    this.redraw();
  }

  setEnabled(isEnabled: boolean): void {
    this.isEnabled = isEnabled;
    this.redraw();
  }

  dispose(): void {
    this.item.dispose();
  }

  private redraw(): void {
    const view = statusView(this.client, this.status, this.isEnabled);
    this.item.text = view.text;
    this.item.tooltip = this.source === undefined ? view.tooltip : `${view.tooltip}\n${this.source}`;
    this.item.accessibilityInformation = { label: view.label };
    this.item.backgroundColor = view.isError
      ? new vscode.ThemeColor("statusBarItem.errorBackground")
      : view.isWarning
        ? new vscode.ThemeColor("statusBarItem.warningBackground")
        : undefined;
  }
}
