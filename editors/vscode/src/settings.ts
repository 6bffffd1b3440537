// The extension's own settings (how to start the server), the launch command built from them, and the part
// of the `diffusionCopilot` section that belongs to the server. Pure: no `vscode` import.

export const SECTION = "diffusionCopilot";

/** Keys under `diffusionCopilot` that only the extension reads; the server's schema has all the others. */
export const CLIENT_ONLY_KEYS: readonly string[] = ["server", "trace"];

/**
 * Server keys that name a program, a server or a secret: read from user settings only and sent once, in
 * `initializationOptions`, never in a push or a configuration answer (docs/protocol.md).
 */
export const MACHINE_KEYS: readonly string[] = ["engineCommand", "vllmUrls", "vllmTokenEnv"];

/** Whether a key (below `diffusionCopilot.`) is read from user settings only: the machine keys and `server.*`. */
export function isMachineKey(key: string): boolean {
  return MACHINE_KEYS.includes(key) || key.startsWith("server.");
}

/** What `WorkspaceConfiguration.inspect()` tells of one setting (the parts this extension reads). */
export interface InspectedSetting {
  readonly defaultValue?: unknown;
  readonly globalValue?: unknown;
}

/** A setting's user-level value, else its default: workspace and folder values are never taken. */
export function userLevel(inspected: InspectedSetting | undefined): unknown {
  return inspected?.globalValue ?? inspected?.defaultValue;
}

export interface ExtensionSettings {
  readonly enable: boolean;
  readonly serverCommand: readonly string[];
  readonly python: string;
  readonly extraArgs: readonly string[];
}

export interface Launch {
  readonly command: string;
  readonly args: readonly string[];
}

/** Reads a setting by its key below `diffusionCopilot.`; undefined when unset. */
export type SettingGetter = (key: string) => unknown;

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === "string") : [];
}

/** The extension's settings, with defaults in place of missing or mistyped values. */
export function readSettings(get: SettingGetter): ExtensionSettings {
  const enable = get("enable");
  const python = get("server.python");
  return {
    enable: typeof enable === "boolean" ? enable : true,
    serverCommand: stringList(get("server.command")).filter((part) => part.trim().length > 0),
    python: typeof python === "string" ? python.trim() : "",
    extraArgs: stringList(get("server.extraArgs")),
  };
}

/** The command that runs the CLI: `server.command`, else `server.python -m ...`, else `diffusion-copilot`. */
export function cliCommand(settings: ExtensionSettings): readonly string[] {
  if (settings.serverCommand.length > 0) {
    return settings.serverCommand;
  }
  if (settings.python.length > 0) {
    return [settings.python, "-m", "diffusion_copilot.server.cli"];
  }
  return ["diffusion-copilot"];
}

/** The process that runs `<cli> SUBCOMMAND ...args`. */
export function cliLaunch(settings: ExtensionSettings, subcommand: readonly string[]): Launch {
  const [command, ...prefix] = cliCommand(settings);
  return { command: command ?? "diffusion-copilot", args: [...prefix, ...subcommand] };
}

/** The language server process: `<cli> serve` plus the extra arguments. */
export function serverLaunch(settings: ExtensionSettings): Launch {
  return cliLaunch(settings, ["serve", ...settings.extraArgs]);
}

/** A one-line rendering of a launch, for logs and error messages. */
export function describeLaunch(launch: Launch): string {
  const quote = (part: string): string => (/^[\w@%+=:,./-]+$/.test(part) ? part : JSON.stringify(part));
  return [launch.command, ...launch.args].map(quote).join(" ");
}

/**
 * The server's workspace-level settings: the `diffusionCopilot` section as JSON without the extension's own
 * keys and without the machine keys (pushed after a change and answered to `workspace/configuration`).
 */
export function serverSettings(section: unknown): Record<string, unknown> {
  if (typeof section !== "object" || section === null || Array.isArray(section)) {
    return {};
  }
  const json = JSON.parse(JSON.stringify(section)) as Record<string, unknown>;
  return Object.fromEntries(
    Object.entries(json).filter(([key]) => !CLIENT_ONLY_KEYS.includes(key) && !MACHINE_KEYS.includes(key)),
  );
}

/** The server's `initializationOptions` section: `serverSettings` plus the machine keys from `user`. */
export function initializationSettings(section: unknown, user: SettingGetter): Record<string, unknown> {
  const machine = MACHINE_KEYS.map((key) => [key, user(key)] as const).filter(([, value]) => value !== undefined);
  return { ...serverSettings(section), ...Object.fromEntries(machine) };
}
