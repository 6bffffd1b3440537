-- Entry point: setup(opts) checks the Neovim version, merges and validates the options, and wires the server,
-- the ghost-text UI, the keymaps and the status together. The public actions used by keymaps and commands.

local M = {}

---@class (exact) diffusion_copilot.State
---@field config diffusion_copilot.Config
---@field enabled boolean
---@field ui table the ghost-text UI in use: diffusion_copilot.builtin or diffusion_copilot.extmark
---@field ui_name 'builtin'|'extmark'
---@field buffers table<integer, integer> attached buffer -> client id

---@type diffusion_copilot.State|nil
local state = nil

--- The UI to use: the built-in needs 0.12+ and triggers automatically by itself.
---@param config diffusion_copilot.Config
---@return 'builtin'|'extmark' name
---@return string|nil warning
local function choose_ui(config)
  local available = require('diffusion_copilot.builtin').is_available()
  local wanted = config.suggestion.ui
  if wanted == 'builtin' and not available then
    return 'extmark', "suggestion.ui = 'builtin' needs Neovim 0.12+; using extmarks"
  end
  if wanted == 'auto' then
    return (available and config.suggestion.auto_trigger) and 'builtin' or 'extmark', nil
  end
  return wanted, nil
end

local function notify(message, level)
  vim.notify('diffusion_copilot: ' .. message, level or vim.log.levels.INFO)
end

---@param opts diffusion_copilot.Config|table|nil
function M.setup(opts)
  if vim.fn.has('nvim-0.10') == 0 then
    return notify('needs Neovim 0.10 or newer', vim.log.levels.ERROR)
  end
  if state then
    return notify('setup() was already called; restart Neovim to change options', vim.log.levels.WARN)
  end
  local config, problems = require('diffusion_copilot.config').merge(opts)
  if #problems > 0 then
    notify('invalid options, using the defaults:\n' .. table.concat(problems, '\n'), vim.log.levels.WARN)
  end
  local ui_name, warning = choose_ui(config)
  if warning then
    notify(warning, vim.log.levels.WARN)
  end
  local ui = require('diffusion_copilot.' .. ui_name)
  state = { config = config, enabled = config.enabled, ui = ui, ui_name = ui_name, buffers = {} }
  vim.api.nvim_set_hl(0, 'DiffusionCopilotGhost', { link = 'Comment', default = true })
  vim.api.nvim_set_hl(0, 'DiffusionCopilotHint', { link = 'Comment', default = true })
  if ui_name == 'extmark' then
    ui.configure(config.suggestion, M.is_enabled)
  end
  local status = require('diffusion_copilot.status')
  require('diffusion_copilot.client').start(config, {
    on_status = status.handler(config.notify_progress),
    on_attach = function(client, bufnr)
      state.buffers[bufnr] = client.id
      ui.attach(client, bufnr)
      ui.set_enabled(bufnr, state.enabled)
    end,
    on_exit = function(client_id)
      status.forget(client_id)
      for bufnr, id in pairs(state.buffers) do
        if id == client_id then
          state.buffers[bufnr] = nil
          ui.detach(bufnr)
        end
      end
    end,
  })
  require('diffusion_copilot.keymaps').set(config.keymaps, M)
end

--- The ghost-text UI for a buffer the plugin is attached to, if it is switched on.
---@param bufnr integer
local function ui_for(bufnr)
  if state and state.enabled and state.buffers[bufnr] then
    return state.ui
  end
end

---@return boolean
function M.is_enabled()
  return state ~= nil and state.enabled
end

---@param enabled boolean
function M.set_enabled(enabled)
  if not state then
    return notify('call setup() first', vim.log.levels.WARN)
  end
  state.enabled = enabled
  for bufnr in pairs(state.buffers) do
    if vim.api.nvim_buf_is_valid(bufnr) then
      state.ui.set_enabled(bufnr, enabled)
    end
  end
  vim.cmd.redrawstatus({ bang = true })
end

--- Accepts the whole suggestion or its next word or line; false when none is shown.
---@param part 'all'|'word'|'line'|nil
---@return boolean
function M.accept(part)
  local bufnr = vim.api.nvim_get_current_buf()
  local ui = ui_for(bufnr)
  return ui ~= nil and ui.accept(bufnr, part or 'all')
end

--- Shows the next (delta > 0) or previous alternative, asking for alternatives when there are none yet.
---@param delta integer
---@return boolean
function M.cycle(delta)
  local bufnr = vim.api.nvim_get_current_buf()
  local ui = ui_for(bufnr)
  return ui ~= nil and ui.cycle(bufnr, delta)
end

---@return boolean
function M.dismiss()
  local bufnr = vim.api.nvim_get_current_buf()
  local ui = ui_for(bufnr)
  return ui ~= nil and ui.dismiss(bufnr)
end

--- Asks for a suggestion now (a manual trigger, which brings alternatives).
---@return boolean
function M.trigger()
  local bufnr = vim.api.nvim_get_current_buf()
  local ui = ui_for(bufnr)
  if ui then
    ui.trigger(bufnr)
  end
  return ui ~= nil
end

---@return boolean
function M.is_visible()
  local bufnr = vim.api.nvim_get_current_buf()
  local ui = ui_for(bufnr)
  return ui ~= nil and ui.is_visible(bufnr)
end

--- What the plugin knows, for `:DiffusionCopilot status`, health and tests.
---@return table
function M.info()
  local client = require('diffusion_copilot.client').get()
  return {
    enabled = M.is_enabled(),
    ui = state and state.ui_name,
    client_id = client and client.id,
    status = require('diffusion_copilot.status').get(client and client.id),
    config = state and state.config,
  }
end

--- Statusline component: 'DC ready 142ms', 'DC loading', 'DC off', or '' where the plugin is not attached.
---@return string
function M.statusline()
  local client = require('diffusion_copilot.client').get()
  if not state or not client then
    return ''
  end
  return require('diffusion_copilot.status').format(
    require('diffusion_copilot.status').get(client.id),
    state.enabled
  )
end

return M
