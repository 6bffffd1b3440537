// The custom parts of the language server's protocol (docs/protocol.md): method names and payloads.
// Pure: no `vscode` import, so the unit tests run under plain node.

export const STATUS_NOTIFICATION = "diffusionCopilot/status";
export const RESTART_ENGINE_COMMAND = "diffusionCopilot.restartEngine";

export type EngineState = "loading" | "ready" | "busy" | "error";

const ENGINE_STATES: readonly EngineState[] = ["loading", "ready", "busy", "error"];

/** What the server reports in `diffusionCopilot/status`. */
export interface ServerStatus {
  readonly state: EngineState;
  readonly message: string | undefined;
  readonly model: string | undefined;
  readonly hasRandomWeights: boolean;
  readonly lastLatencyMs: number | undefined;
}

function optionalString(value: unknown): string | undefined {
  return typeof value === "string" && value.length > 0 ? value : undefined;
}

function optionalNumber(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}

/** Validates a status payload; returns undefined for anything that is not one. */
export function parseServerStatus(raw: unknown): ServerStatus | undefined {
  if (typeof raw !== "object" || raw === null) {
    return undefined;
  }
  const fields = raw as Record<string, unknown>;
  const state = fields["state"];
  if (typeof state !== "string" || !ENGINE_STATES.includes(state as EngineState)) {
    return undefined;
  }
  return {
    state: state as EngineState,
    message: optionalString(fields["message"]),
    model: optionalString(fields["model"]),
    hasRandomWeights: fields["hasRandomWeights"] === true,
    lastLatencyMs: optionalNumber(fields["lastLatencyMs"]),
  };
}
