// Where the `diffusion-copilot` command is: the user's settings, else the places the user controls (PATH,
// ~/.local/bin, pipx). A workspace's own virtual environments are only suggestions, never run unasked: a cloned
// repository must not choose the program that runs (README, "User settings only"). Pure: no `vscode` import.

import * as path from "node:path";

import type { ExtensionSettings } from "./settings";

export const CLI_NAME = "diffusion-copilot";

/** The places searched, as plain data (tests pass their own). */
export interface Places {
  readonly pathVariable: string;
  readonly home: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly isWindows: boolean;
}

export type Discovery =
  | { readonly kind: "found"; readonly command: readonly string[]; readonly where: string }
  | { readonly kind: "missing"; readonly problem: string; readonly setting: string };

/** Whether a file exists and may be run. */
export type IsExecutable = (file: string) => boolean;

function executableName(name: string, places: Places): string {
  return places.isWindows ? `${name}.exe` : name;
}

/** `name` looked up on PATH, or the path itself when it has a directory part. */
export function resolveCommand(name: string, places: Places, isExecutable: IsExecutable): string | undefined {
  if (name.includes("/") || name.includes("\\")) {
    return isExecutable(name) ? name : undefined;
  }
  for (const dir of places.pathVariable.split(path.delimiter).filter((d) => d.length > 0)) {
    const file = path.join(dir, places.isWindows && !name.endsWith(".exe") ? `${name}.exe` : name);
    if (isExecutable(file)) {
      return file;
    }
  }
  return undefined;
}

/** The places the user controls, in order: (where, file). */
export function automaticPlaces(places: Places): [string, string][] {
  const exe = executableName(CLI_NAME, places);
  const pipxHome = places.env.PIPX_HOME || path.join(places.home, ".local", "share", "pipx");
  const bin = places.isWindows ? "Scripts" : "bin";
  return [
    ["~/.local/bin", path.join(places.env.PIPX_BIN_DIR || path.join(places.home, ".local", "bin"), exe)],
    ["pipx", path.join(pipxHome, "venvs", CLI_NAME, bin, exe)],
    ["pipx", path.join(places.home, ".local", "pipx", "venvs", CLI_NAME, bin, exe)], // pipx before 1.3
  ];
}

/** The command that runs the CLI and where it came from, or what is missing and which setting fixes it. */
export function discover(settings: ExtensionSettings, places: Places, isExecutable: IsExecutable): Discovery {
  if (settings.serverCommand.length > 0) {
    const [first = "", ...rest] = settings.serverCommand;
    const file = resolveCommand(first, places, isExecutable);
    return file === undefined
      ? {
          kind: "missing",
          problem: `${first} (from diffusionCopilot.server.command) was not found`,
          setting: "server.command",
        }
      : { kind: "found", command: [file, ...rest], where: "the setting diffusionCopilot.server.command" };
  }
  if (settings.python.length > 0) {
    const file = resolveCommand(settings.python, places, isExecutable);
    return file === undefined
      ? {
          kind: "missing",
          problem: `${settings.python} (from diffusionCopilot.server.python) was not found`,
          setting: "server.python",
        }
      : {
          kind: "found",
          command: [file, "-m", "diffusion_copilot.server.cli"],
          where: "the setting diffusionCopilot.server.python",
        };
  }
  const onPath = resolveCommand(CLI_NAME, places, isExecutable);
  if (onPath !== undefined) {
    return { kind: "found", command: [onPath], where: "PATH" };
  }
  for (const [where, file] of automaticPlaces(places)) {
    if (isExecutable(file)) {
      return { kind: "found", command: [file], where };
    }
  }
  return {
    kind: "missing",
    problem: `the ${CLI_NAME} command is not on PATH, in ~/.local/bin or in pipx`,
    setting: "server.python",
  };
}

/** Pythons of the workspace folders' own virtual environments (`.venv`, `venv`): offered, never used unasked. */
export function workspacePythons(folders: readonly string[], places: Places, isExecutable: IsExecutable): string[] {
  const python = places.isWindows ? path.join("Scripts", "python.exe") : path.join("bin", "python");
  return folders
    .flatMap((folder) => [".venv", "venv"].map((name) => path.join(folder, name, python)))
    .filter((file) => isExecutable(file));
}
