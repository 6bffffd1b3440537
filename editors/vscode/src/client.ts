// The language client's lifecycle: start `diffusion-copilot serve`, relay its status, restart on demand.
// Restarts are serialised; requests that arrive while one is queued share it.

import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  RevealOutputChannelOn,
  State,
  type LanguageClientOptions,
  type ServerOptions,
} from "vscode-languageclient/node";

import { parseServerStatus, STATUS_NOTIFICATION, type ServerStatus } from "./protocol";
import {
  describeLaunch,
  initializationSettings,
  isMachineKey,
  readSettings,
  SECTION,
  serverLaunch,
  serverSettings,
  userLevel,
  type ExtensionSettings,
} from "./settings";
import type { ClientState } from "./statusView";

/** The current extension settings; the ones that start programs come from user settings only. */
export function currentSettings(): ExtensionSettings {
  const config = vscode.workspace.getConfiguration(SECTION);
  return readSettings((key) => (isMachineKey(key) ? userLevel(config.inspect(key)) : config.get(key)));
}

function currentServerSettings(): Record<string, unknown> {
  return serverSettings(vscode.workspace.getConfiguration(SECTION));
}

function currentInitializationSettings(): Record<string, unknown> {
  const config = vscode.workspace.getConfiguration(SECTION);
  return initializationSettings(config, (key) => userLevel(config.inspect(key)));
}

type InlineResult = vscode.InlineCompletionItem[] | vscode.InlineCompletionList | null | undefined;

/** One completion result as a log line: `[{"insertText": ..., "range": [line, char, line, char]}]`. */
function describeItems(result: InlineResult): string {
  const items = result == null ? [] : Array.isArray(result) ? result : result.items;
  return JSON.stringify(
    items.map(({ insertText, range }) => ({
      insertText: typeof insertText === "string" ? insertText : insertText.value,
      range: range && [range.start.line, range.start.character, range.end.line, range.end.character],
    })),
  );
}

export class ServerClient implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private queue: Promise<void> = Promise.resolve();
  private queuedRestart: Promise<void> | undefined;
  private readonly stateEmitter = new vscode.EventEmitter<ClientState>();
  private readonly statusEmitter = new vscode.EventEmitter<ServerStatus>();
  readonly onDidChangeState = this.stateEmitter.event;
  readonly onDidReceiveStatus = this.statusEmitter.event;

  constructor(
    private readonly log: vscode.LogOutputChannel,
    private readonly trace: vscode.LogOutputChannel,
  ) {}

  /** Starts the server (queued behind any restart in progress). */
  start(): Promise<void> {
    return this.enqueue(() => this.startNow());
  }

  /** Stops and starts the server; calls made while a restart waits in the queue share it. */
  restart(): Promise<void> {
    this.queuedRestart ??= this.enqueue(async () => {
      this.queuedRestart = undefined;
      await this.stopNow();
      await this.startNow();
    });
    return this.queuedRestart;
  }

  /** Pushes the server's settings after a change (the server validates them and warns about bad values). */
  async notifySettingsChanged(): Promise<void> {
    const client = this.client;
    if (client?.isRunning()) {
      await client.sendNotification(DidChangeConfigurationNotification.type, {
        settings: { [SECTION]: currentServerSettings() },
      });
    }
  }

  stop(): Promise<void> {
    return this.enqueue(() => this.stopNow());
  }

  dispose(): void {
    void this.stop();
    this.stateEmitter.dispose();
    this.statusEmitter.dispose();
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    const next = this.queue.then(step, step);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async startNow(): Promise<void> {
    const settings = currentSettings();
    const launch = serverLaunch(settings);
    // No `transport`: TransportKind.stdio would append `--stdio`, which the CLI does not take.
    const serverOptions: ServerOptions = { command: launch.command, args: [...launch.args] };
    const client = new LanguageClient("diffusionCopilot", "Diffusion Copilot", serverOptions, this.clientOptions());
    client.onDidChangeState((event) => {
      if (event.newState === State.Running) {
        this.stateEmitter.fire({ kind: "running" });
      } else if (event.newState === State.Stopped && this.client === client) {
        this.stateEmitter.fire({ kind: "stopped" });
      }
    });
    client.onNotification(STATUS_NOTIFICATION, (params: unknown) => {
      const status = parseServerStatus(params);
      if (status === undefined) {
        this.log.warn(`ignoring a malformed ${STATUS_NOTIFICATION} notification: ${JSON.stringify(params)}`);
      } else {
        this.statusEmitter.fire(status);
      }
    });
    this.client = client;
    this.log.info(`starting: ${describeLaunch(launch)}`);
    this.stateEmitter.fire({ kind: "starting" });
    try {
      await client.start();
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.log.error(`the server did not start (${describeLaunch(launch)}): ${reason}`);
      this.stateEmitter.fire({ kind: "failed", reason });
      void this.offerHelp(`Diffusion Copilot: the server did not start: ${reason}`);
    }
  }

  private async stopNow(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client === undefined) {
      return;
    }
    try {
      if (client.needsStop()) {
        await client.stop(5000);
      }
    } catch (error) {
      this.log.warn(`stopping the server: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      await client.dispose().catch(() => undefined);
      this.stateEmitter.fire({ kind: "stopped" });
    }
  }

  private clientOptions(): LanguageClientOptions {
    return {
      documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
      outputChannel: this.log,
      traceOutputChannel: this.trace,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      initializationOptions: () => ({ [SECTION]: currentInitializationSettings() }),
      middleware: {
        workspace: {
          // The section also holds the extension's own keys and the machine keys; the server would warn.
          configuration: async (params, token, next) => {
            const result = await next(params, token);
            if (!Array.isArray(result)) {
              return result;
            }
            return result.map((value: unknown, index) =>
              params.items[index]?.section === SECTION ? serverSettings(value) : value,
            );
          },
        },
        provideInlineCompletionItems: async (document, position, context, token, next) => {
          const result = await next(document, position, context, token);
          if (this.log.logLevel !== vscode.LogLevel.Off && this.log.logLevel <= vscode.LogLevel.Debug) {
            const isAutomatic = context.triggerKind === vscode.InlineCompletionTriggerKind.Automatic;
            const where = `${document.uri.fsPath}:${position.line}:${position.character}`;
            this.log.debug(
              `completion (${isAutomatic ? "automatic" : "invoked"}) ${where} -> ${describeItems(result)}`,
            );
          }
          return result;
        },
      },
    };
  }

  private async offerHelp(message: string): Promise<void> {
    const choice = await vscode.window.showErrorMessage(message, "Show Log", "Open Settings");
    if (choice === "Show Log") {
      this.log.show();
    } else if (choice === "Open Settings") {
      await vscode.commands.executeCommand("workbench.action.openSettings", `${SECTION}.server`);
    }
  }
}
