-- Ghost text through Neovim's built-in vim.lsp.inline_completion (0.12+): switches it on for the server's
-- buffers and maps the plugin's accept, partial-accept, cycle, dismiss and trigger actions onto it.

local client_mod = require('diffusion_copilot.client')
local suggestion = require('diffusion_copilot.suggestion')

local M = {}

local INVOKED = 1

--- Whether this Neovim has the built-in inline completion.
---@return boolean
function M.is_available()
  return vim.fn.has('nvim-0.12') == 1 and vim.lsp.inline_completion ~= nil
end

local function namespace()
  return vim.api.nvim_get_namespaces()['nvim.lsp.inline_completion']
end

-- Buffers whose suggestions are switched on; the built-in runs only in the current one of them, because
-- its insert-mode autocmds are not buffer-local: with several buffers active, each one would send requests
-- for its own document at the cursor of another.
---@type table<integer, boolean>
local wanted = {}

--- The built-in's completor for a buffer; the built-in has no public way to send an Invoked request.
local function completor(bufnr)
  local ok, capability = pcall(require, 'vim.lsp._capability')
  local class = ok and capability.all and capability.all.inline_completion
  return class and class.active and class.active[bufnr]
end

-- The last item of each buffer reported shown to the server.
---@type table<integer, string>
local reported = {}

--- Reports the built-in's current item to the server once it is on screen (the built-in sends nothing).
local function report_shown(bufnr)
  local active = completor(bufnr)
  local current = active and active.current
  local id = current and client_mod.item_id(current)
  if not id or id == reported[bufnr] or not M.is_visible(bufnr) then
    return
  end
  local client = vim.lsp.get_client_by_id(current.client_id)
  if client and client.name == client_mod.name then
    reported[bufnr] = id
    client_mod.notify_shown(client, { insertText = current.insert_text, command = current.command })
  end
end

local function follow(bufnr)
  local is_current = vim.api.nvim_get_current_buf() == bufnr
  vim.lsp.inline_completion.enable(wanted[bufnr] == true and is_current, { bufnr = bufnr })
end

---@param _ vim.lsp.Client
---@param bufnr integer
function M.attach(_, bufnr)
  local group = vim.api.nvim_create_augroup('diffusion_copilot.builtin.' .. bufnr, { clear = true })
  vim.api.nvim_create_autocmd({ 'BufEnter', 'BufLeave' }, {
    group = group,
    buffer = bufnr,
    callback = function(args)
      vim.lsp.inline_completion.enable(args.event == 'BufEnter' and wanted[bufnr] == true, { bufnr = bufnr })
    end,
  })
  vim.api.nvim_create_autocmd('LspRequest', {
    group = group,
    buffer = bufnr,
    callback = function(args)
      local request = args.data.request
      if request.type == 'complete' and request.method == 'textDocument/inlineCompletion' then
        vim.schedule(function() -- the built-in's handler, scheduled before this event, has shown the answer
          report_shown(bufnr)
        end)
      end
    end,
  })
  wanted[bufnr] = wanted[bufnr] ~= false
  follow(bufnr)
end

---@param bufnr integer
function M.detach(bufnr)
  M.clear(bufnr)
  wanted[bufnr], reported[bufnr] = nil, nil
  pcall(vim.api.nvim_del_augroup_by_name, 'diffusion_copilot.builtin.' .. bufnr)
  if vim.api.nvim_buf_is_valid(bufnr) then
    vim.lsp.inline_completion.enable(false, { bufnr = bufnr })
  end
end

---@param bufnr integer
---@return boolean
function M.is_visible(bufnr)
  local ns = namespace()
  return ns ~= nil and #vim.api.nvim_buf_get_extmarks(bufnr, ns, 0, -1, { limit = 1 }) > 0
end

--- Inserts `part` of a built-in item at the cursor (the built-in has already hidden it).
---@param item vim.lsp.inline_completion.Item
---@param part 'word'|'line'
local function insert_part(item, part)
  local row, col = unpack(vim.api.nvim_win_get_cursor(0))
  row = row - 1
  local line = vim.api.nvim_get_current_line()
  local start_col = item.range and item.range.start.row == row and item.range.start.col or col
  local ghost = suggestion.ghost(suggestion.item_text(item.insert_text), line, math.min(start_col, col), col)
  if not ghost then
    return
  end
  local text = suggestion.part(ghost.text, part)
  vim.api.nvim_buf_set_text(0, row, col, row, col, vim.split(text, '\n', { plain = true }))
  local end_row, end_col = suggestion.end_position(row, col, text)
  vim.api.nvim_win_set_cursor(0, { end_row + 1, end_col })
end

---@param bufnr integer
---@param part 'all'|'word'|'line'
---@return boolean
function M.accept(bufnr, part)
  if not M.is_visible(bufnr) then
    return false
  end
  if part == 'all' then
    return vim.lsp.inline_completion.get({ bufnr = bufnr })
  end
  return vim.lsp.inline_completion.get({
    bufnr = bufnr,
    on_accept = function(item)
      insert_part(item, part)
    end,
  })
end

---@param bufnr integer
function M.trigger(bufnr)
  local active = completor(bufnr)
  if active and active.request then
    active:request(INVOKED)
  end
end

---@param bufnr integer
---@param delta integer
---@return boolean
function M.cycle(bufnr, delta)
  local active = completor(bufnr)
  local count = active and active.count_items and active:count_items() or 0
  if not M.is_visible(bufnr) or count < 2 then
    M.trigger(bufnr) -- automatic requests bring one item; alternatives come with a manual one
    return true
  end
  vim.lsp.inline_completion.select({ bufnr = bufnr, count = delta })
  report_shown(bufnr)
  return true
end

---@param bufnr integer
---@return boolean
function M.dismiss(bufnr)
  if not M.is_visible(bufnr) then
    return false
  end
  return vim.lsp.inline_completion.get({ bufnr = bufnr, on_accept = function() end })
end

--- Hides what is shown without accepting it.
---@param bufnr integer
function M.clear(bufnr)
  if M.is_visible(bufnr) then
    vim.lsp.inline_completion.get({ bufnr = bufnr, on_accept = function() end })
  end
end

--- Switches suggestions on or off in a buffer.
---@param bufnr integer
---@param enabled boolean
function M.set_enabled(bufnr, enabled)
  wanted[bufnr] = enabled
  follow(bufnr)
end

return M
