-- Next-edit suggestions: asks the server (textDocument/copilotInlineEdit) for the edit that follows the last one,
-- shows it (old text struck through, new text as virtual lines), jumps to it and applies it; any other edit clears
-- it. Works on Neovim 0.11 and 0.12 (extmarks only, no inline-completion API). Not wired into setup() yet.

local M = {}

---@class diffusion_copilot.InlineEdit
---@field text string
---@field range lsp.Range
---@field textDocument { uri: string, version: integer }
---@field command? lsp.Command

local ns = vim.api.nvim_create_namespace('diffusion_copilot_next_edit')
---@type table<integer, { edit: diffusion_copilot.InlineEdit, client_id: integer, tick: integer }>
local shown = {}

--- Clear the buffer's suggestion.
---@param bufnr integer
function M.clear(bufnr)
  shown[bufnr] = nil
  if vim.api.nvim_buf_is_valid(bufnr) then
    vim.api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  end
end

--- Show the first edit of a copilotInlineEdit result (nothing for none).
---@param bufnr integer
---@param client_id integer
---@param result { edits: diffusion_copilot.InlineEdit[] }|nil
function M.show(bufnr, client_id, result)
  M.clear(bufnr)
  local edit = result and result.edits and result.edits[1]
  if not edit then
    return false
  end
  local s, e = edit.range.start, edit.range['end']
  vim.api.nvim_set_hl(
    0,
    'DiffusionCopilotEditOld',
    { strikethrough = true, link = 'DiffDelete', default = true }
  )
  vim.api.nvim_set_hl(0, 'DiffusionCopilotEditNew', { link = 'DiffAdd', default = true })
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
  shown[bufnr] = { edit = edit, client_id = client_id, tick = vim.api.nvim_buf_get_changedtick(bufnr) }
  local client = vim.lsp.get_client_by_id(client_id)
  if client and edit.command then
    client:notify('textDocument/didShowInlineEdit', { item = { command = edit.command } })
  end
  return true
end

--- Ask the server for the next edit at the cursor and show it.
---@param bufnr integer|nil
function M.request(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local client = require('diffusion_copilot.client').get(bufnr)
  if not client then
    return
  end
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.textDocument.version = vim.lsp.util.buf_versions[bufnr]
  client:request('textDocument/copilotInlineEdit', params, function(err, result)
    if not err and vim.api.nvim_buf_is_valid(bufnr) then
      M.show(bufnr, client.id, result)
    end
  end, bufnr)
end

--- Move the cursor to the suggestion's start; false when there is none.
function M.jump()
  local entry = shown[vim.api.nvim_get_current_buf()]
  if not entry then
    return false
  end
  local start = entry.edit.range.start
  vim.api.nvim_win_set_cursor(0, { start.line + 1, start.character })
  return true
end

--- Apply the suggestion (and run its accept command); false when there is none.
function M.apply()
  local bufnr = vim.api.nvim_get_current_buf()
  local entry = shown[bufnr]
  if not entry then
    return false
  end
  M.clear(bufnr)
  local client = vim.lsp.get_client_by_id(entry.client_id)
  local encoding = client and client.offset_encoding or 'utf-16'
  vim.lsp.util.apply_text_edits({ { range = entry.edit.range, newText = entry.edit.text } }, bufnr, encoding)
  if client and entry.edit.command then
    client:exec_cmd(entry.edit.command, { bufnr = bufnr })
  end
  return true
end

--- Clear on any edit, and ask again after an edit pause (`pause_ms`).
---@param bufnr integer
---@param pause_ms integer
function M.attach(bufnr, pause_ms)
  local timer = assert(vim.uv.new_timer())
  vim.api.nvim_create_autocmd({ 'TextChanged', 'TextChangedI' }, {
    buffer = bufnr,
    callback = function()
      M.clear(bufnr)
      timer:stop()
      timer:start(
        pause_ms,
        0,
        vim.schedule_wrap(function()
          if vim.api.nvim_buf_is_valid(bufnr) and vim.api.nvim_get_current_buf() == bufnr then
            M.request(bufnr)
          end
        end)
      )
    end,
  })
end

return M
