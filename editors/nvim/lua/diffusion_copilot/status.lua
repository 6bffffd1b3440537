-- The engine status the server reports through `diffusionCopilot/status`, the statusline text built from it and
-- the notifications of its changes (loading, ready, error). Owns the last status per client; redraws statuslines
-- and fires `User DiffusionCopilotStatus` on change.

local M = {}

---@type table<integer, diffusion_copilot.StatusParams>
local by_client = {}

--- What to tell the user when the status goes from `previous` to `current`: the engine started loading, is ready
--- after loading, or failed. Nil for the rest (a latency update, busy and back), so nothing repeats.
---@param previous diffusion_copilot.StatusParams|nil
---@param current diffusion_copilot.StatusParams
---@return string|nil message
---@return integer|nil level a vim.log.levels value
function M.announcement(previous, current)
  local before = previous and previous.state
  if current.state == before then
    return nil, nil
  end
  local detail = current.message and (': ' .. current.message) or ''
  if current.state == 'loading' then
    return 'Diffusion Copilot: loading the model' .. detail, vim.log.levels.INFO
  end
  if current.state == 'error' then
    return 'Diffusion Copilot: the engine failed' .. detail, vim.log.levels.ERROR
  end
  if current.state == 'ready' and (before == 'loading' or before == 'error') then
    if current.hasRandomWeights == true then
      return 'Diffusion Copilot: ready, but the model has random weights (its completions are noise)',
        vim.log.levels.WARN
    end
    return 'Diffusion Copilot: ready' .. (current.model and (' (' .. current.model .. ')') or ''),
      vim.log.levels.INFO
  end
  return nil, nil
end

--- Handler for the `diffusionCopilot/status` notification; with `should_notify`, changes worth knowing about
--- (see `announcement`) also go to vim.notify, so loading shows without a statusline.
---@param should_notify boolean|nil
---@return lsp.Handler
function M.handler(should_notify)
  return function(err, params, ctx)
    M.on_status(err, params, ctx, should_notify)
  end
end

---@param params diffusion_copilot.StatusParams
---@param ctx lsp.HandlerContext
---@param should_notify boolean|nil
function M.on_status(_, params, ctx, should_notify)
  if type(params) ~= 'table' or type(params.state) ~= 'string' then
    return
  end
  for key, value in pairs(params) do
    if value == vim.NIL then
      params[key] = nil -- JSON null
    end
  end
  local message, level = M.announcement(by_client[ctx.client_id], params)
  by_client[ctx.client_id] = params
  if should_notify and message then
    vim.notify(message, level)
  end
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
