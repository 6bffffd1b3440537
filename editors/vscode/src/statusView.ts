// What the status bar item shows: one pure mapping from (client state, server status, enabled) to text.
// Pure: no `vscode` import; statusBar.ts applies the view to the real item.

import type { ServerStatus } from "./protocol";

/** The language client's own lifecycle, as the extension sees it. */
export type ClientState =
  | { readonly kind: "starting" }
  | { readonly kind: "running" }
  | { readonly kind: "stopped" }
  | { readonly kind: "failed"; readonly reason: string };

export interface StatusView {
  /** Status bar text with a codicon, e.g. `$(check) Diffusion 84 ms`. */
  readonly text: string;
  /** Plain words for screen readers and tests: `Diffusion Copilot: ready, 84 ms`. */
  readonly label: string;
  readonly tooltip: string;
  readonly isError: boolean;
  readonly isWarning: boolean;
}

const NAME = "Diffusion";
const FULL_NAME = "Diffusion Copilot";

/** Latency as users read it: `84 ms`, `1.2 s`. */
export function formatLatency(latencyMs: number): string {
  if (latencyMs < 1000) {
    return `${Math.round(latencyMs)} ms`;
  }
  return `${(latencyMs / 1000).toFixed(1)} s`;
}

function view(icon: string, words: string, tooltip: string[], extra: Partial<StatusView> = {}): StatusView {
  const suffix = extra.text ?? "";
  return {
    text: `$(${icon}) ${NAME}${suffix}`,
    label: `${FULL_NAME}: ${words}`,
    tooltip: [...tooltip, "Click for options."].join("\n"),
    isError: extra.isError ?? false,
    isWarning: extra.isWarning ?? false,
  };
}

function modelLines(status: ServerStatus): string[] {
  const lines: string[] = [];
  if (status.model !== undefined) {
    lines.push(`Model: ${status.model}`);
  }
  if (status.hasRandomWeights) {
    lines.push("The model has random weights: its completions are noise.");
  }
  if (status.lastLatencyMs !== undefined) {
    lines.push(`Last completion: ${formatLatency(status.lastLatencyMs)}`);
  }
  return lines;
}

function serverView(status: ServerStatus, isEnabled: boolean): StatusView {
  const lines = modelLines(status);
  const latency = status.lastLatencyMs !== undefined ? formatLatency(status.lastLatencyMs) : undefined;
  switch (status.state) {
    case "loading":
      return view("loading~spin", "loading", [status.message ?? "Loading the model…", ...lines]);
    case "busy":
      return view("sync~spin", "busy", [status.message ?? "Completing…", ...lines]);
    case "error":
      return view(
        "error",
        `error${status.message ? `, ${status.message}` : ""}`,
        [`Error: ${status.message ?? "the engine failed"}`, ...lines],
        { isError: true },
      );
    case "ready": {
      const words = [isEnabled ? "ready" : "disabled", ...(latency ? [latency] : [])].join(", ");
      const head = isEnabled ? (status.message ?? "Ready.") : "Completions are off (diffusionCopilot.enable).";
      return view(isEnabled ? "sparkle" : "circle-slash", words, [head, ...lines], {
        text: isEnabled && latency ? ` ${latency}` : "",
        isWarning: status.hasRandomWeights,
      });
    }
  }
}

/** The status bar view for the current state of the client and the last status the server sent. */
export function statusView(client: ClientState, status: ServerStatus | undefined, isEnabled: boolean): StatusView {
  switch (client.kind) {
    case "starting":
      return view("loading~spin", "starting", ["Starting the language server…"]);
    case "stopped":
      return view("debug-stop", "stopped", ["The language server is stopped."]);
    case "failed":
      return view("error", `failed, ${client.reason}`, [`The language server failed: ${client.reason}`], {
        isError: true,
      });
    case "running":
      return status === undefined
        ? view("loading~spin", "starting", ["Waiting for the server's status…"])
        : serverView(status, isEnabled);
  }
}
