-- The plugin's own ghost text for Neovim 0.10–0.11 (and for manual-only triggering): sends
-- textDocument/inlineCompletion, draws the first line inline and the rest as virtual lines, accepts, cycles.
-- Owns the per-buffer request and item state; what to draw and insert comes from suggestion.lua.

local client_mod = require('diffusion_copilot.client')
local suggestion = require('diffusion_copilot.suggestion')

local M = {}

local INVOKED, AUTOMATIC = 1, 2
local namespace = vim.api.nvim_create_namespace('diffusion_copilot')

---@class (exact) diffusion_copilot.BufferState
---@field client_id integer
---@field augroup integer
---@field timer uv.uv_timer_t|nil
---@field request_id integer|nil
---@field items diffusion_copilot.InlineItem[]|nil
---@field index integer
---@field invoked boolean the items answer a manual request (alternatives)
---@field pending_cycle integer|nil steps to move once the alternatives arrive
---@field shown_id string|nil the last item reported shown to the server

---@type table<integer, diffusion_copilot.BufferState>
local buffers = {}

---@type diffusion_copilot.SuggestionConfig
local options = { auto_trigger = true, debounce_ms = 150, ui = 'extmark', hl_group = 'DiffusionCopilotGhost' }
local is_enabled = function()
  return true
end

M.namespace = namespace

local function stop_timer(state)
  if state.timer then
    state.timer:stop()
    state.timer:close()
    state.timer = nil
  end
end

local function cancel(bufnr, state)
  stop_timer(state)
  local client = vim.lsp.get_client_by_id(state.client_id)
  if state.request_id and client then
    client_mod.cancel(client, state.request_id)
  end
  state.request_id = nil
end

local function hide(bufnr)
  vim.api.nvim_buf_clear_namespace(bufnr, namespace, 0, -1)
end

local function cursor()
  local pos = vim.api.nvim_win_get_cursor(0)
  return pos[1] - 1, pos[2]
end

--- Ghost text of the current item at the cursor, with where the item's range ends on the cursor line.
---@return diffusion_copilot.Ghost|nil, diffusion_copilot.InlineItem|nil, integer|nil
local function current_ghost(bufnr, state)
  local item = state.items and state.items[state.index]
  local client = vim.lsp.get_client_by_id(state.client_id)
  if not item or not client or vim.api.nvim_get_current_buf() ~= bufnr then
    return nil
  end
  local row, col = cursor()
  local line = vim.api.nvim_buf_get_lines(bufnr, row, row + 1, false)[1] or ''
  local start_col, end_col = col, col
  if item.range then
    if item.range.start.line ~= row then
      return nil
    end
    local encoding = client.offset_encoding or 'utf-16'
    start_col = suggestion.byte_col(line, item.range.start.character, encoding)
    end_col = math.max(col, suggestion.byte_col(line, item.range['end'].character, encoding))
  end
  if start_col > col then
    return nil
  end
  return suggestion.ghost(suggestion.item_text(item.insertText), line, start_col, col), item, end_col
end

local function show(bufnr, state)
  hide(bufnr)
  local ghost, item = current_ghost(bufnr, state)
  if not ghost or not item then
    return
  end
  local row, col = cursor()
  local virt_text = { { ghost.lines[1], options.hl_group } }
  if state.invoked and #state.items > 1 then
    virt_text[#virt_text + 1] = { (' (%d/%d)'):format(state.index, #state.items), 'DiffusionCopilotHint' }
  end
  local virt_lines = {}
  for i = 2, #ghost.lines do
    virt_lines[#virt_lines + 1] = { { ghost.lines[i], options.hl_group } }
  end
  vim.api.nvim_buf_set_extmark(bufnr, namespace, row, col, {
    virt_text = virt_text,
    virt_text_pos = 'inline',
    virt_lines = #virt_lines > 0 and virt_lines or nil,
    hl_mode = 'combine',
  })
  local id, client = client_mod.item_id(item), vim.lsp.get_client_by_id(state.client_id)
  if id and id ~= state.shown_id and client then -- once per item, not at each redraw while typing through
    state.shown_id = id
    client_mod.notify_shown(client, item)
  end
end

local function on_result(bufnr, state, request_id, tick, row, col, kind)
  return function(err, result)
    if state.request_id ~= request_id or buffers[bufnr] ~= state then
      return
    end
    state.request_id = nil
    if err then
      if err.code ~= -32800 then
        vim.notify_once('diffusion_copilot: ' .. tostring(err.message), vim.log.levels.WARN)
      end
      return
    end
    local r, c = cursor()
    local stale = vim.api.nvim_buf_get_changedtick(bufnr) ~= tick or r ~= row or c ~= col
    if stale or not vim.api.nvim_get_mode().mode:match('^i') or not is_enabled() then
      return
    end
    local items = result and (result.items or result) or {}
    state.items, state.invoked = #items > 0 and items or nil, kind == INVOKED
    state.index = 1
    if state.pending_cycle and state.items then
      state.index = (state.pending_cycle % #items) + 1
    end
    state.pending_cycle = nil
    show(bufnr, state)
  end
end

---@param bufnr integer
---@param kind 1|2 LSP InlineCompletionTriggerKind
function M.request(bufnr, kind)
  local state = buffers[bufnr]
  local client = state and vim.lsp.get_client_by_id(state.client_id)
  if not state or not client or not is_enabled() then
    return
  end
  cancel(bufnr, state)
  local row, col = cursor()
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding or 'utf-16')
  params.context = { triggerKind = kind }
  local tick = vim.api.nvim_buf_get_changedtick(bufnr)
  local holder = {}
  holder.id = client_mod.request(client, 'textDocument/inlineCompletion', params, function(err, result)
    on_result(bufnr, state, holder.id, tick, row, col, kind)(err, result)
  end, bufnr)
  state.request_id = holder.id
end

local function on_move(bufnr)
  local state = buffers[bufnr]
  if not state then
    return
  end
  cancel(bufnr, state)
  show(bufnr, state) -- typing through: the ghost shrinks by what was typed, or goes away
  if not current_ghost(bufnr, state) then
    state.items = nil
  end
  if not options.auto_trigger or not is_enabled() then
    return
  end
  state.timer = vim.defer_fn(function()
    state.timer = nil
    if buffers[bufnr] == state and vim.api.nvim_get_mode().mode:match('^i') then
      M.request(bufnr, AUTOMATIC)
    end
  end, options.debounce_ms)
end

--- Hides the ghost text and forgets the items; cancels what is in flight.
---@param bufnr integer
function M.clear(bufnr)
  local state = buffers[bufnr]
  if state then
    cancel(bufnr, state)
    state.items, state.pending_cycle = nil, nil
  end
  if vim.api.nvim_buf_is_valid(bufnr) then
    hide(bufnr)
  end
end

---@param suggestion_options diffusion_copilot.SuggestionConfig
---@param enabled fun(): boolean
function M.configure(suggestion_options, enabled)
  options, is_enabled = suggestion_options, enabled
end

---@param client vim.lsp.Client
---@param bufnr integer
function M.attach(client, bufnr)
  if buffers[bufnr] then
    return
  end
  local augroup = vim.api.nvim_create_augroup('diffusion_copilot.extmark.' .. bufnr, { clear = true })
  buffers[bufnr] = { client_id = client.id, augroup = augroup, index = 1, invoked = false }
  vim.api.nvim_create_autocmd({ 'InsertEnter', 'CursorMovedI' }, {
    group = augroup,
    buffer = bufnr,
    callback = function()
      on_move(bufnr)
    end,
  })
  vim.api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = augroup,
    buffer = bufnr,
    callback = function()
      M.clear(bufnr)
    end,
  })
end

---@param bufnr integer
function M.detach(bufnr)
  local state = buffers[bufnr]
  if state then
    M.clear(bufnr)
    pcall(vim.api.nvim_del_augroup_by_id, state.augroup)
    buffers[bufnr] = nil
  end
end

---@param bufnr integer
---@return boolean
function M.is_visible(bufnr)
  return #vim.api.nvim_buf_get_extmarks(bufnr, namespace, 0, -1, { limit = 1 }) > 0
end

--- Inserts the whole ghost text, or its next word or line. False when nothing is shown.
---@param bufnr integer
---@param part 'all'|'word'|'line'
---@return boolean
function M.accept(bufnr, part)
  local state = buffers[bufnr]
  local ghost, item, end_col = current_ghost(bufnr, state or {})
  if not state or not ghost or not item or not M.is_visible(bufnr) then
    return false
  end
  local client = vim.lsp.get_client_by_id(state.client_id)
  local text = suggestion.part(ghost.text, part)
  local row, col = cursor()
  local is_snippet = type(item.insertText) == 'table' and part == 'all'
  M.clear(bufnr)
  vim.schedule(function() -- expr mappings may not change the buffer
    if is_snippet then
      vim.snippet.expand(text)
    else
      local replace_end = part == 'all' and end_col or col
      vim.api.nvim_buf_set_text(bufnr, row, col, row, replace_end, vim.split(text, '\n', { plain = true }))
      local end_row, new_col = suggestion.end_position(row, col, text)
      vim.api.nvim_win_set_cursor(0, { end_row + 1, new_col })
    end
    if part == 'all' and item.command and client then
      client_mod.exec_cmd(client, item.command, bufnr)
    end
  end)
  return true
end

--- Moves to another alternative; without alternatives yet, asks the server for them.
---@param bufnr integer
---@param delta integer
---@return boolean
function M.cycle(bufnr, delta)
  local state = buffers[bufnr]
  if not state then
    return false
  end
  if state.items and state.invoked and #state.items > 1 then
    state.index = (state.index - 1 + delta) % #state.items + 1
    show(bufnr, state)
    return true
  end
  local pending = state.items and delta or 0
  M.request(bufnr, INVOKED)
  state.pending_cycle = pending
  return true
end

---@param bufnr integer
---@return boolean
function M.dismiss(bufnr)
  if not M.is_visible(bufnr) then
    return false
  end
  M.clear(bufnr)
  return true
end

---@param bufnr integer
function M.trigger(bufnr)
  M.request(bufnr, INVOKED)
end

---@param bufnr integer
---@param enabled boolean
function M.set_enabled(bufnr, enabled)
  if not enabled then
    M.clear(bufnr)
  end
end

return M
