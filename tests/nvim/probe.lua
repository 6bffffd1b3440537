-- Test probe loaded into the headless Neovim of tests/test_nvim_*.py: records every inlineCompletion request,
-- response and cancel of the plugin's client as it happens (copilotInlineEdit ones in `edit_log`), and reads back
-- the ghost text and the suggested edit the user sees. It observes the real client and server; it replaces nothing.

local M = { log = {}, edit_log = {} }
_G.DCProbe = M

local METHOD = 'textDocument/inlineCompletion'
local EDIT_METHOD = 'textDocument/copilotInlineEdit'
local HINT_GROUPS = { ComplHintMore = true, DiffusionCopilotHint = true }

local function item_text(item)
  local text = item.insertText
  return type(text) == 'table' and text.value or text
end

local function instrument(client)
  if client._dc_probe then
    return
  end
  client._dc_probe = true
  local request, cancel = client.request, client.cancel_request
  client.request = function(self, method, params, handler, bufnr)
    if method == EDIT_METHOD then
      local entry = { kind = 'request', pos = params.position, version = params.textDocument.version }
      M.edit_log[#M.edit_log + 1] = entry
      local ok, id = request(self, method, params, function(err, result, ...)
        local answer = { kind = 'response', id = entry.id, error = err and err.code, edits = result and result.edits }
        M.edit_log[#M.edit_log + 1] = answer
        if handler then
          return handler(err, result, ...)
        end
      end, bufnr)
      entry.id = id
      return ok, id
    end
    if method ~= METHOD then
      return request(self, method, params, handler, bufnr)
    end
    local entry = { kind = 'request', trigger = params.context and params.context.triggerKind, pos = params.position }
    M.log[#M.log + 1] = entry
    local ok, id = request(self, method, params, function(err, result, ...)
      local items = {}
      for _, item in ipairs(result and (result.items or result) or {}) do
        items[#items + 1] = {
          text = item_text(item),
          start = item.range and item.range.start.character,
          line = item.range and item.range.start.line,
          id = item.command and item.command.arguments and item.command.arguments[1],
        }
      end
      M.log[#M.log + 1] = { kind = 'response', id = entry.id, error = err and err.code, items = items }
      if handler then
        return handler(err, result, ...)
      end
    end, bufnr)
    entry.id = id
    return ok, id
  end
  client.cancel_request = function(self, id)
    local method = self.requests[id] and self.requests[id].method
    local log = method == EDIT_METHOD and M.edit_log or M.log
    log[#log + 1] = { kind = 'cancel', id = id }
    return cancel(self, id)
  end
end

vim.api.nvim_create_autocmd('LspAttach', {
  callback = function(args)
    local client = vim.lsp.get_client_by_id(args.data.client_id)
    if client and client.name == 'diffusion_copilot' then
      instrument(client)
    end
  end,
})

--- The ghost text on screen in the current buffer (hint chunks left out), or nil.
function M.ghost()
  local bufnr = vim.api.nvim_get_current_buf()
  for _, name in ipairs({ 'nvim.lsp.inline_completion', 'diffusion_copilot' }) do
    local ns = vim.api.nvim_get_namespaces()[name]
    local marks = ns and vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { details = true }) or {}
    if #marks > 0 then
      local details = marks[1][4]
      local first = {}
      for _, chunk in ipairs(details.virt_text or {}) do
        if not HINT_GROUPS[chunk[2]] then
          first[#first + 1] = chunk[1]
        end
      end
      local lines = { table.concat(first) }
      for _, virt_line in ipairs(details.virt_lines or {}) do
        local parts = {}
        for _, chunk in ipairs(virt_line) do
          if not HINT_GROUPS[chunk[2]] then
            parts[#parts + 1] = chunk[1]
          end
        end
        lines[#lines + 1] = table.concat(parts)
      end
      return { text = table.concat(lines, '\n'), row = marks[1][2], col = marks[1][3], namespace = name }
    end
  end
  return nil
end

--- The suggested edits on screen in the current buffer, in the order drawn: each one's struck-through range and new
--- lines, or nil for none. The plugin draws an edit as its old-text mark (when it replaces text) then its lines.
function M.next_edit()
  local ns = vim.api.nvim_get_namespaces()['diffusion_copilot_next_edit']
  local marks = ns and vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true }) or {}
  if #marks == 0 then
    return nil
  end
  table.sort(marks, function(a, b)
    return a[1] < b[1]
  end)
  local shown, current = {}, {}
  for _, mark in ipairs(marks) do
    local details = mark[4]
    if details.virt_lines then
      current.row, current.lines = mark[2], {}
      for _, virt_line in ipairs(details.virt_lines) do
        current.lines[#current.lines + 1] = virt_line[1][1]
      end
      shown[#shown + 1], current = current, {}
    elseif details.end_row then
      current.old = { mark[2], mark[3], details.end_row, details.end_col }
    end
  end
  return shown
end

--- Everything a test asserts on, in one call.
function M.state()
  local client = vim.lsp.get_clients({ name = 'diffusion_copilot', bufnr = 0 })[1]
  local pending, edits_pending = 0, 0
  for _, request in pairs(client and client.requests or {}) do
    if request.method == METHOD and request.type == 'pending' then
      pending = pending + 1
    elseif request.method == EDIT_METHOD and request.type == 'pending' then
      edits_pending = edits_pending + 1
    end
  end
  local cursor = vim.api.nvim_win_get_cursor(0)
  return {
    mode = vim.api.nvim_get_mode().mode,
    lines = vim.api.nvim_buf_get_lines(0, 0, -1, false),
    cursor = { cursor[1] - 1, cursor[2] },
    ghost = M.ghost() or vim.NIL,
    log = M.log,
    pending = pending,
    next_edit = M.next_edit() or vim.NIL,
    edit_log = M.edit_log,
    edits_pending = edits_pending,
    version = vim.lsp.util.buf_versions[vim.api.nvim_get_current_buf()],
    attached = client ~= nil and client.initialized == true,
  }
end

return M
