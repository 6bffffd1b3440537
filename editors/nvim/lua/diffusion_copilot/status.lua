-- The engine status the server reports through `diffusionCopilot/status`, and the statusline text built from
-- it. Owns the last status per client; redraws statuslines and fires `User DiffusionCopilotStatus` on change.

local M = {}

---@type table<integer, diffusion_copilot.StatusParams>
local by_client = {}

--- Handler for the `diffusionCopilot/status` notification.
---@param params diffusion_copilot.StatusParams
---@param ctx lsp.HandlerContext
function M.on_status(_, params, ctx)
  if type(params) ~= 'table' or type(params.state) ~= 'string' then
    return
  end
  for key, value in pairs(params) do
    if value == vim.NIL then
      params[key] = nil -- JSON null
    end
  end
  by_client[ctx.client_id] = params
  vim.api.nvim_exec_autocmds('User', { pattern = 'DiffusionCopilotStatus', modeline = false, data = params })
  vim.cmd.redrawstatus({ bang = true })
end

---@param client_id integer
function M.forget(client_id)
  by_client[client_id] = nil
end

--- The last status of a client, or nil before the server sent one.
---@param client_id integer|nil
---@return diffusion_copilot.StatusParams|nil
function M.get(client_id)
  return client_id and by_client[client_id] or nil
end

--- Statusline text for a status: 'DC ready 142ms', 'DC loading', 'DC off'; '' when there is nothing to say.
--- A model with random weights is named as such.
---@param status diffusion_copilot.StatusParams|nil
---@param enabled boolean
---@return string
function M.format(status, enabled)
  if not enabled then
    return 'DC off'
  end
  if status == nil then
    return ''
  end
  local text = 'DC ' .. status.state
  if type(status.lastLatencyMs) == 'number' then
    text = ('%s %dms'):format(text, math.floor(status.lastLatencyMs + 0.5))
  end
  if status.hasRandomWeights == true then
    text = text .. ' (random weights)' -- the placeholder model writes noise: say so
  end
  return text
end

return M
