// The language client's lifecycle: start `diffusion-copilot serve`, relay its status, restart on demand.
// Restarts are serialised; requests that arrive while one is queued share it.

import { accessSync, constants, statSync } from "node:fs";
import { homedir } from "node:os";
import * as vscode from "vscode";
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  type ErrorHandler,
  LanguageClient,
  RevealOutputChannelOn,
  State,
  type LanguageClientOptions,
  type ServerOptions,
} from "vscode-languageclient/node";

import { discover, type Discovery, type Places } from "./discovery";
import { parseServerStatus, STATUS_NOTIFICATION, type ServerStatus } from "./protocol";
import {
  describeLaunch,
  initializationSettings,
  isMachineKey,
  readSettings,
  SECTION,
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

/** This machine's search places for the server command. */
export function currentPlaces(): Places {
  return {
    pathVariable: process.env.PATH ?? "",
    home: homedir(),
    env: process.env,
    isWindows: process.platform === "win32",
  };
}

/** Whether `file` is a regular file this process may run. */
export function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/** Where the server command is now (settings, else PATH, ~/.local/bin, pipx). */
export function currentDiscovery(): Discovery {
  return discover(currentSettings(), currentPlaces(), isExecutable);
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

const DID_SHOW_NOTIFICATION = "textDocument/didShowCompletion";

/** The protocol form of a shown item: what the server reads is its command, which names the completion. */
function shownItem(item: vscode.InlineCompletionItem): Record<string, unknown> {
  const insertText = typeof item.insertText === "string" ? item.insertText : item.insertText.value;
  return {
    insertText,
    command: item.command && {
      title: item.command.title,
      command: item.command.command,
      arguments: item.command.arguments,
    },
  };
}

export class ServerClient implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private queue: Promise<void> = Promise.resolve();
  private queuedRestart: Promise<void> | undefined;
  private readonly stateEmitter = new vscode.EventEmitter<ClientState>();
  private readonly statusEmitter = new vscode.EventEmitter<ServerStatus>();
  private readonly sourceEmitter = new vscode.EventEmitter<string>();
  readonly onDidChangeState = this.stateEmitter.event;
  readonly onDidReceiveStatus = this.statusEmitter.event;
  /** Which command runs the server and where it was found, as one line for the status tooltip. */
  readonly onDidChooseServer = this.sourceEmitter.event;

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

  /** Sends a request to the running server; undefined when none runs. */
  async request(method: string, params: object, token: vscode.CancellationToken): Promise<unknown> {
    const client = this.client;
    return client?.isRunning() ? client.sendRequest(method, params, token) : undefined;
  }

  /** Sends a notification to the running server, if one runs. */
  notify(method: string, params: object): void {
    const client = this.client;
    if (client?.isRunning()) {
      void client.sendNotification(method, params);
    }
  }

  dispose(): void {
    void this.stop();
    this.stateEmitter.dispose();
    this.statusEmitter.dispose();
    this.sourceEmitter.dispose();
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    const next = this.queue.then(step, step);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async startNow(): Promise<void> {
    const settings = currentSettings();
    const found = currentDiscovery();
    if (found.kind === "missing") {
      // Not started at all: the language client would add a second notification of its own ("spawn ENOENT").
      this.log.error(`the server was not started: ${found.problem}`);
      this.sourceEmitter.fire(`Server: not found (${found.problem})`);
      this.stateEmitter.fire({ kind: "failed", reason: found.problem });
      void this.offerHelp(
        `Diffusion Copilot: ${found.problem}. Set diffusionCopilot.${found.setting} to the Python of the ` +
          "virtual environment where the diffusion-copilot package is installed.",
      );
      return;
    }
    const [command = "", ...prefix] = found.command;
    const launch = { command, args: [...prefix, "serve", ...settings.extraArgs] };
    // No `transport`: TransportKind.stdio would append `--stdio`, which the CLI does not take.
    const serverOptions: ServerOptions = { command: launch.command, args: [...launch.args] };
    let hasRun = false;
    const usual: { handler?: ErrorHandler } = {}; // the client's default restarts, made once it exists
    const client: LanguageClient = new LanguageClient("diffusionCopilot", "Diffusion Copilot", serverOptions, {
      ...this.clientOptions(),
      errorHandler: {
        // A server that never came up is reported once, below; one that ran and crashed gets the usual restarts.
        error: (error, message, count) =>
          hasRun && usual.handler
            ? usual.handler.error(error, message, count)
            : { action: ErrorAction.Shutdown, handled: true },
        closed: () =>
          hasRun && usual.handler ? usual.handler.closed() : { action: CloseAction.DoNotRestart, handled: true },
      },
    });
    usual.handler = client.createDefaultErrorHandler();
    client.onDidChangeState((event) => {
      if (event.newState === State.Running) {
        hasRun = true;
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
    this.log.info(`starting: ${describeLaunch(launch)} (found through ${found.where})`);
    this.sourceEmitter.fire(`Server: ${describeLaunch(launch)} (found through ${found.where})`);
    this.stateEmitter.fire({ kind: "starting" });
    try {
      await client.start();
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.log.error(`the server did not start (${describeLaunch(launch)}): ${reason}`);
      this.stateEmitter.fire({ kind: "failed", reason });
      void this.offerHelp(
        `Diffusion Copilot: the server did not start (${command}, found through ${found.where}): ${reason}. ` +
          "Set diffusionCopilot.server.python to the Python of the virtual environment where the " +
          "diffusion-copilot package is installed.",
      );
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
          const items = result == null ? [] : Array.isArray(result) ? result : result.items;
          if (context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke && items[0] !== undefined) {
            // Asked for explicitly, the answer is shown at once (VS Code has no stable "shown" event for the
            // automatic ones); the server counts it as shown (docs/protocol.md, telemetry notifications).
            void this.client?.sendNotification(DID_SHOW_NOTIFICATION, { item: shownItem(items[0]) });
          }
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
    const choose = "Choose Python Interpreter…";
    const choice = await vscode.window.showErrorMessage(message, choose, "Open Settings", "Show Log");
    if (choice === "Show Log") {
      this.log.show();
    } else if (choice === "Open Settings") {
      await openServerSettings();
    } else if (choice === choose) {
      await vscode.commands.executeCommand(CHOOSE_PYTHON_COMMAND);
    }
  }
}

export const CHOOSE_PYTHON_COMMAND = "diffusionCopilot.choosePython";

/** Opens the settings editor where the machine-scoped server settings show: the remote tab in a remote window
 * (code-server, Remote-SSH), whose user tab hides them, else the user tab. */
export async function openServerSettings(): Promise<void> {
  const query = `@ext:diffusion-copilot.diffusion-copilot ${SECTION}.server`;
  if (vscode.env.remoteName !== undefined) {
    await vscode.commands.executeCommand("workbench.action.openRemoteSettings", { query });
  } else {
    await vscode.commands.executeCommand("workbench.action.openSettings", query);
  }
}
