-- Next-edit suggestions: asks the server (textDocument/copilotInlineEdit) for the edits that follow the last one,
-- shows them (old text struck through, new text as virtual lines), jumps to the first and applies them all at once
-- (a rename's other sites together); any other edit clears them. Asks after each edit: a normal-mode change, or leaving insert mode after typing (the server waits
-- `nextEdit.debounceMs` more, and drops the wait when a newer edit comes). Owns the per-buffer request and edit
-- state. Neovim 0.11+ (extmarks only, no inline-completion API).

local client_mod = require('diffusion_copilot.client')

local M = {}

M.METHOD = 'textDocument/copilotInlineEdit'
M.DID_SHOW = 'textDocument/didShowInlineEdit'

---@class diffusion_copilot.InlineEdit
---@field text string
---@field range lsp.Range
---@field textDocument { uri: string, version: integer }
---@field command? lsp.Command

---@class (exact) diffusion_copilot.NextEditState
---@field client_id integer|nil
---@field augroup integer|nil
---@field request_id integer|nil the copilotInlineEdit request in flight
---@field edits diffusion_copilot.InlineEdit[]|nil the suggestion shown: one answer's edits, in document order
---@field tick integer|nil changedtick the suggestion was made for
---@field insert_tick integer|nil changedtick at InsertEnter: leaving insert mode after a change asks
---@field asked_tick integer|nil changedtick of the last request: a TextChanged for it is no new edit

local ns = vim.api.nvim_create_namespace('diffusion_copilot_next_edit')
M.namespace = ns

---@type table<integer, diffusion_copilot.NextEditState>
local buffers = {}

---@param bufnr integer
---@return diffusion_copilot.NextEditState
local function state_of(bufnr)
  buffers[bufnr] = buffers[bufnr] or {}
  return buffers[bufnr]
end

local function cancel_request(bufnr)
  local state = buffers[bufnr]
  if state and state.request_id then
    local client = state.client_id and vim.lsp.get_client_by_id(state.client_id)
    if client then
      client_mod.cancel(client, state.request_id)
    end
    state.request_id = nil
  end
end

--- Clear the buffer's suggestion (the request in flight stays).
---@param bufnr integer
function M.clear(bufnr)
  local state = buffers[bufnr]
  if state then
    state.edits, state.tick = nil, nil
  end
  if vim.api.nvim_buf_is_valid(bufnr) then
    vim.api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  end
end

--- The suggestion shown in a buffer, if any: its first edit.
---@param bufnr integer|nil
---@return diffusion_copilot.InlineEdit|nil
function M.get(bufnr)
  local state = buffers[bufnr or vim.api.nvim_get_current_buf()]
  return state and state.edits and state.edits[1]
end

--- Draw one edit: its old text struck through, its new text as virtual lines below; false when it lies past the end.
---@param bufnr integer
---@param edit diffusion_copilot.InlineEdit
---@return boolean
local function draw(bufnr, edit)
  local s, e = edit.range.start, edit.range['end']
  local line_count = vim.api.nvim_buf_line_count(bufnr)
  if s.line >= line_count then
    return false
  end
  local end_line = math.min(e.line, line_count - 1)
  local end_col = math.min(e.character, #vim.api.nvim_buf_get_lines(bufnr, end_line, end_line + 1, false)[1])
  if s.line ~= e.line or s.character ~= e.character then
    vim.api.nvim_buf_set_extmark(bufnr, ns, s.line, s.character, {
      end_row = end_line,
      end_col = end_col,
      hl_group = 'DiffusionCopilotEditOld',
    })
  end
  local virt_lines = {}
  for _, line in ipairs(vim.split(edit.text, '\n', { plain = true })) do
    virt_lines[#virt_lines + 1] = { { line, 'DiffusionCopilotEditNew' } }
  end
  vim.api.nvim_buf_set_extmark(bufnr, ns, end_line, 0, { virt_lines = virt_lines })
  return true
end

--- Show the edits of a copilotInlineEdit result (nothing for none); tells the server each was shown.
---@param bufnr integer
---@param client_id integer
---@param result { edits: diffusion_copilot.InlineEdit[] }|nil
---@return boolean shown
function M.show(bufnr, client_id, result)
  M.clear(bufnr)
  local edits = {}
  for _, edit in ipairs(result and result.edits or {}) do
    if draw(bufnr, edit) then
      edits[#edits + 1] = edit
    end
  end
  if #edits == 0 then
    return false
  end
  local state = state_of(bufnr)
  state.client_id, state.edits, state.tick = client_id, edits, vim.api.nvim_buf_get_changedtick(bufnr)
  local client = vim.lsp.get_client_by_id(client_id)
  for _, edit in ipairs(edits) do
    if client and edit.command then
      client:notify(M.DID_SHOW, { item = { command = edit.command } })
    end
  end
  return true
end

--- Ask the server for the next edit at the cursor and show the answer, unless the buffer changed meanwhile.
---@param bufnr integer|nil
---@param invoked boolean|nil asked for explicitly: the server skips its debounce
function M.request(bufnr, invoked)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local client = client_mod.get(bufnr)
  if not client or bufnr ~= vim.api.nvim_get_current_buf() then
    return -- the position comes from the current window
  end
  cancel_request(bufnr)
  local state = state_of(bufnr)
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.textDocument.version = vim.lsp.util.buf_versions[bufnr]
  if invoked then
    params.context = { triggerKind = 1 }
  end
  local tick = vim.api.nvim_buf_get_changedtick(bufnr)
  state.asked_tick = tick
  local request_id
  request_id = client_mod.request(client, M.METHOD, params, function(err, result)
    if state.request_id == request_id then
      state.request_id = nil
    end
    if err or not vim.api.nvim_buf_is_valid(bufnr) or vim.api.nvim_buf_get_changedtick(bufnr) ~= tick then
      return -- cancelled, failed, or about an older text
    end
    M.show(bufnr, client.id, result)
  end, bufnr)
  state.client_id, state.request_id = client.id, request_id
end

--- Move the cursor to the suggestion's (first edit's) start; false when there is none.
---@return boolean
function M.jump()
  local edit = M.get()
  if not edit then
    return false
  end
  local start = edit.range.start
  vim.api.nvim_win_set_cursor(0, { start.line + 1, start.character })
  return true
end

--- Whether the cursor is on a line of one of the suggestion's edits (where the next <Tab> applies rather than
--- jumps).
---@return boolean
function M.is_at_edit()
  local state = buffers[vim.api.nvim_get_current_buf()]
  local line = vim.api.nvim_win_get_cursor(0)[1] - 1
  for _, edit in ipairs(state and state.edits or {}) do
    if edit.range.start.line <= line and line <= edit.range['end'].line then
      return true
    end
  end
  return false
end

--- Apply all of the suggestion's edits at once and run their accept commands; false when there is none.
---@return boolean
function M.apply()
  local bufnr = vim.api.nvim_get_current_buf()
  local state = buffers[bufnr]
  local edits = state and state.edits
  if not edits then
    return false
  end
  M.clear(bufnr)
  local client = state.client_id and vim.lsp.get_client_by_id(state.client_id)
  local encoding = client and client.offset_encoding or 'utf-16'
  local text_edits = {}
  for _, edit in ipairs(edits) do
    text_edits[#text_edits + 1] = { range = edit.range, newText = edit.text }
  end
  vim.lsp.util.apply_text_edits(text_edits, bufnr, encoding)
  for _, edit in ipairs(edits) do
    if client and edit.command then
      client_mod.exec_cmd(client, edit.command, bufnr)
    end
  end
  return true
end

--- "Tab to jump, Tab to apply": jumps to a suggestion elsewhere, applies one on the cursor's line.
---@return boolean
function M.jump_or_apply()
  if M.is_at_edit() then
    return M.apply()
  end
  return M.jump()
end

--- Clears on any edit and asks after each one: a normal-mode change at once, an insert on leaving insert mode.
---@param bufnr integer
---@param client_id integer
---@param is_enabled fun(): boolean the plugin's switch (`:DiffusionCopilot toggle`), read at each edit
function M.attach(bufnr, client_id, is_enabled)
  local state = state_of(bufnr)
  state.client_id = client_id
  state.augroup = vim.api.nvim_create_augroup('diffusion_copilot.next_edit.' .. bufnr, { clear = true })
  local function on_edit(args)
    if vim.api.nvim_buf_get_changedtick(bufnr) == state.asked_tick then
      return -- the TextChanged that follows leaving insert mode: the request in flight is about this text
    end
    M.clear(bufnr)
    cancel_request(bufnr)
    if args.event == 'TextChanged' and is_enabled() then
      M.request(bufnr)
    end
  end
  vim.api.nvim_create_autocmd({ 'TextChanged', 'TextChangedI' }, {
    group = state.augroup,
    buffer = bufnr,
    callback = on_edit,
  })
  vim.api.nvim_create_autocmd('InsertEnter', {
    group = state.augroup,
    buffer = bufnr,
    callback = function()
      state.insert_tick = vim.api.nvim_buf_get_changedtick(bufnr)
    end,
  })
  vim.api.nvim_create_autocmd('InsertLeave', {
    group = state.augroup,
    buffer = bufnr,
    callback = function()
      if state.insert_tick ~= vim.api.nvim_buf_get_changedtick(bufnr) and is_enabled() then
        M.request(bufnr)
      end
    end,
  })
  vim.api.nvim_create_autocmd('BufWipeout', {
    group = state.augroup,
    buffer = bufnr,
    callback = function()
      M.detach(bufnr)
    end,
  })
end

--- Stops asking for and showing suggestions in a buffer.
---@param bufnr integer
function M.detach(bufnr)
  local state = buffers[bufnr]
  if not state then
    return
  end
  cancel_request(bufnr)
  M.clear(bufnr)
  if state.augroup then
    pcall(vim.api.nvim_del_augroup_by_id, state.augroup)
  end
  buffers[bufnr] = nil
end

--- Whether a buffer asks for suggestions.
---@param bufnr integer
---@return boolean
function M.is_attached(bufnr)
  return buffers[bufnr] ~= nil and buffers[bufnr].augroup ~= nil
end

return M
