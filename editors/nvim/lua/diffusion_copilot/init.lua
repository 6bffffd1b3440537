-- Entry point: setup(opts) checks the Neovim version, merges and validates the options, and wires the server,
-- the ghost-text UI, next-edit suggestions (0.11+), the keymaps and the status together. The public actions used
-- by keymaps and commands.

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
  vim.api.nvim_set_hl(0, 'DiffusionCopilotEditOld', { strikethrough = true, default = true })
  vim.api.nvim_set_hl(0, 'DiffusionCopilotEditNew', { link = 'DiffAdd', default = true })
  local next_edit = require('diffusion_copilot.next_edit')
  local has_next_edit = vim.fn.has('nvim-0.11') == 1 and config.settings.nextEdit.enabled
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
      if has_next_edit then
        next_edit.attach(bufnr, client.id, M.is_enabled)
      end
    end,
    on_exit = function(client_id)
      status.forget(client_id)
      for bufnr, id in pairs(state.buffers) do
        if id == client_id then
          state.buffers[bufnr] = nil
          ui.detach(bufnr)
          next_edit.detach(bufnr)
        end
      end
    end,
  })
  require('diffusion_copilot.keymaps').set(config.keymaps, M)
  if has_next_edit then
    require('diffusion_copilot.keymaps').set_next_edit(config.next_edit, {
      jump = M.next_edit_jump,
      apply = M.next_edit_apply,
      jump_or_apply = M.next_edit_jump_or_apply,
    })
  end
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
      require('diffusion_copilot.next_edit').clear(bufnr)
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

--- The next-edit module where the plugin is switched on and attached to the current buffer.
local function next_edit_here()
  local bufnr = vim.api.nvim_get_current_buf()
  local next_edit = require('diffusion_copilot.next_edit')
  if state and state.enabled and next_edit.is_attached(bufnr) then
    return next_edit
  end
end

--- Asks for the next edit now (no debounce); false where next-edit suggestions are off.
---@return boolean
function M.next_edit()
  local next_edit = next_edit_here()
  if next_edit then
    next_edit.request(nil, true)
  end
  return next_edit ~= nil
end

--- Moves to the suggested edit; false when none is shown.
---@return boolean
function M.next_edit_jump()
  local next_edit = next_edit_here()
  return next_edit ~= nil and next_edit.jump()
end

--- Applies the suggested edit; false when none is shown.
---@return boolean
function M.next_edit_apply()
  local next_edit = next_edit_here()
  return next_edit ~= nil and next_edit.apply()
end

--- Jumps to the suggested edit, or applies it when the cursor is on its line; false when none is shown.
---@return boolean
function M.next_edit_jump_or_apply()
  local next_edit = next_edit_here()
  return next_edit ~= nil and next_edit.jump_or_apply()
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
