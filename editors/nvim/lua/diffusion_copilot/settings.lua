-- Defaults of the server's `diffusionCopilot` settings (docs/protocol.md, server/settings.py), sent to the
-- server as they are merged with the user's `settings` option. A test checks them against the server schema.

local M = {}

---@class (exact) diffusion_copilot.ServerSettings
---@field enable boolean Show inline completions.
---@field enabledLanguages string[] Language ids to complete in; "*" means all.
---@field disabledLanguages string[] Language ids never completed (wins over enabledLanguages).
---@field model string|vim.NIL Checkpoint directory or Hugging Face id; vim.NIL (null): the embedded default model.
---@field device string Where the engine runs: auto, cpu, cuda, cuda:N or mps.
---@field dtype 'auto'|'bfloat16'|'float16'|'float32' Weight dtype of the engine.
---@field maxSteps integer Denoising steps at most per canvas (1–512).
---@field canvasLength integer Canvas length in tokens (4–256).
---@field alternatives integer Completions computed for a manually triggered request (1–8).
---@field latencyBudgetMs integer Wall-clock budget of an automatic completion in the engine (50–60000).
---@field debounceMs integer Wait before an automatic request reaches the engine (0–2000).
---@field engineCommand string[] Command that starts the engine process; empty uses the server's Python.
---@field telemetry boolean Record shown and accepted completions in a local SQLite file.
---@field seed integer|vim.NIL Fixes the sampler's randomness; vim.NIL (null) draws a new seed each time.
---@field minConfidence number Completions end before the first token the model is less sure of than this (0–1).
---@field backend 'transformers'|'vllm' Where the engine runs the model: here, or on the servers of vllmUrls.
---@field vllmUrls string[] vLLM servers of a team deployment (http://host:8000); several are replicas.
---@field vllmTokenEnv string Name of the environment variable holding the vLLM servers' --api-key.
---@field nextEdit diffusion_copilot.NextEditSettings Next-edit suggestions.

---@class (exact) diffusion_copilot.NextEditSettings
---@field enabled boolean Suggest the edit that follows the last one; the plugin asks after each edit when true.
---@field minConfidence number A suggested edit is dropped below this mean probability of its rewrite (0–1).
---@field debounceMs integer Wait after an edit before an automatic next-edit request reaches the engine (0–5000).

--- Keys that name a program, a server or a secret: the server takes them only from init_options (sent once,
--- from setup() opts), never from workspace settings (docs/protocol.md, "Where settings come from").
M.machine_keys = { 'engineCommand', 'vllmUrls', 'vllmTokenEnv' }

--- The settings without the machine keys: what the client answers to `workspace/configuration` and pushes.
---@param settings table<string, any>
---@return table<string, any>
function M.workspace_part(settings)
  local part = vim.deepcopy(settings)
  for _, key in ipairs(M.machine_keys) do
    part[key] = nil
  end
  return part
end

---@return diffusion_copilot.ServerSettings
function M.defaults()
  return {
    enable = true,
    enabledLanguages = { '*' },
    disabledLanguages = { 'plaintext', 'markdown' },
    model = vim.NIL,
    device = 'auto',
    dtype = 'auto',
    maxSteps = 16,
    canvasLength = 32,
    alternatives = 3,
    latencyBudgetMs = 1500,
    debounceMs = 50,
    engineCommand = {},
    telemetry = true,
    seed = vim.NIL,
    minConfidence = 0.15,
    backend = 'transformers',
    vllmUrls = {},
    vllmTokenEnv = 'DIFFUSION_COPILOT_VLLM_TOKEN',
    nextEdit = { enabled = true, minConfidence = 0.5, debounceMs = 300 },
  }
end

return M
