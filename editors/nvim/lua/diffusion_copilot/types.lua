-- LuaLS types of the protocol payloads the plugin reads (docs/protocol.md). Annotations only; no code.

---@alias diffusion_copilot.EngineState 'loading'|'ready'|'busy'|'error'

---@class (exact) diffusion_copilot.StatusParams Params of the `diffusionCopilot/status` notification.
---@field state diffusion_copilot.EngineState
---@field message string|nil
---@field model string|nil
---@field lastLatencyMs number|nil
---@field hasRandomWeights boolean|nil

---@class (exact) diffusion_copilot.InlineItem One `InlineCompletionItem` (LSP 3.18).
---@field insertText string|{kind: 'snippet', value: string}
---@field filterText string|nil
---@field range lsp.Range|nil
---@field command lsp.Command|nil

---@class (exact) diffusion_copilot.InlineList
---@field items diffusion_copilot.InlineItem[]

return {}
