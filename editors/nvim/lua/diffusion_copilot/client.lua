-- Starting the language server through vim.lsp and deciding which buffers it attaches to.
-- vim.lsp.config/enable on 0.11+, vim.lsp.start from a FileType autocmd on 0.10. Draws nothing.

local M = {}

M.name = 'diffusion_copilot'

--- Whether the plugin serves a buffer: a normal, named file whose filetype is switched on.
---@param bufnr integer
---@param filetypes table<string, boolean>
---@return boolean
function M.serves(bufnr, filetypes)
  if not vim.api.nvim_buf_is_valid(bufnr) or vim.bo[bufnr].buftype ~= '' then
    return false
  end
  if vim.api.nvim_buf_get_name(bufnr) == '' then
    return false
  end
  local filetype = vim.bo[bufnr].filetype
  local switch = filetypes[filetype]
  if switch == nil then
    switch = filetypes['*'] ~= false
  end
  return switch
end

--- The workspace root of a buffer: the nearest marker's folder, else the file's folder.
---@param bufnr integer
---@param markers string[]
---@return string
function M.root(bufnr, markers)
  return vim.fs.root(bufnr, markers) or vim.fs.dirname(vim.api.nvim_buf_get_name(bufnr))
end

--- The running client attached to a buffer (the current one by default), if any.
---@param bufnr integer|nil
---@return vim.lsp.Client|nil
function M.get(bufnr)
  return vim.lsp.get_clients({ name = M.name, bufnr = bufnr or vim.api.nvim_get_current_buf() })[1]
end

---@class (exact) diffusion_copilot.ClientHooks
---@field on_attach fun(client: vim.lsp.Client, bufnr: integer)
---@field on_exit fun(client_id: integer)
---@field on_status lsp.Handler

--- The vim.lsp client configuration built from the plugin config.
---@param config diffusion_copilot.Config
---@param hooks diffusion_copilot.ClientHooks
---@return vim.lsp.ClientConfig
function M.lsp_config(config, hooks)
  local capabilities = vim.lsp.protocol.make_client_capabilities()
  capabilities.textDocument.inlineCompletion = capabilities.textDocument.inlineCompletion
    or { dynamicRegistration = false }
  return {
    name = M.name,
    cmd = config.server.cmd,
    capabilities = capabilities,
    init_options = { diffusionCopilot = config.settings },
    settings = { diffusionCopilot = require('diffusion_copilot.settings').workspace_part(config.settings) },
    handlers = { ['diffusionCopilot/status'] = hooks.on_status },
    on_attach = hooks.on_attach,
    on_exit = function(_, _, client_id)
      vim.schedule(function() -- on_exit runs in a fast event, where most API calls are not allowed
        hooks.on_exit(client_id)
      end)
    end,
  }
end

--- Registers the server so that it starts for every buffer the plugin serves.
---@param config diffusion_copilot.Config
---@param hooks diffusion_copilot.ClientHooks
function M.start(config, hooks)
  local lsp_config = M.lsp_config(config, hooks)
  if vim.fn.has('nvim-0.11') == 1 then
    lsp_config.root_dir = function(bufnr, on_dir)
      if M.serves(bufnr, config.filetypes) then
        on_dir(M.root(bufnr, config.server.root_markers))
      end
    end
    vim.lsp.config(M.name, lsp_config)
    vim.lsp.enable(M.name)
    return
  end
  local function start(bufnr)
    if M.serves(bufnr, config.filetypes) then
      local buffer_config = vim.deepcopy(lsp_config)
      buffer_config.root_dir = M.root(bufnr, config.server.root_markers)
      vim.lsp.start(buffer_config, { bufnr = bufnr })
    end
  end
  vim.api.nvim_create_autocmd('FileType', {
    group = vim.api.nvim_create_augroup('diffusion_copilot.start', { clear = true }),
    callback = function(args)
      start(args.buf)
    end,
  })
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) and vim.bo[bufnr].filetype ~= '' then
      start(bufnr)
    end
  end
end

--- Sends a request with the method syntax of 0.11+ or the function syntax of 0.10.
---@param client vim.lsp.Client
---@param method string
---@param params table
---@param handler lsp.Handler
---@param bufnr integer
---@return integer|nil request_id
function M.request(client, method, params, handler, bufnr)
  local ok, request_id
  if vim.fn.has('nvim-0.11') == 1 then
    ok, request_id = client:request(method, params, handler, bufnr)
  else
    ok, request_id = client.request(method, params, handler, bufnr)
  end
  return ok and request_id or nil
end

---@param client vim.lsp.Client
---@param request_id integer
function M.cancel(client, request_id)
  if vim.fn.has('nvim-0.11') == 1 then
    client:cancel_request(request_id)
  else
    client.cancel_request(request_id)
  end
end

--- Runs an item's command (the server's accept command) the way vim.lsp runs code-action commands.
---@param client vim.lsp.Client
---@param command lsp.Command
---@param bufnr integer
function M.exec_cmd(client, command, bufnr)
  if vim.fn.has('nvim-0.11') == 1 then
    client:exec_cmd(command, { bufnr = bufnr })
  else
    client.request('workspace/executeCommand', command, function() end, bufnr)
  end
end

--- Tells the server that an item is on screen (textDocument/didShowCompletion, docs/protocol.md), so its
--- statistics count the suggestion as shown. An item without the server's command names no completion: skipped.
---@param client vim.lsp.Client
---@param item {insertText: string|table, command?: lsp.Command}
function M.notify_shown(client, item)
  if not item.command then
    return
  end
  local params = { item = { insertText = item.insertText, command = item.command } }
  if vim.fn.has('nvim-0.11') == 1 then
    client:notify('textDocument/didShowCompletion', params)
  else
    client.notify('textDocument/didShowCompletion', params)
  end
end

--- The id the server gave an item (its accept command's argument), or nil.
---@param item {command?: lsp.Command}
---@return string|nil
function M.item_id(item)
  local arguments = item.command and item.command.arguments
  return arguments and arguments[1] or nil
end

return M
