-- `:DiffusionCopilot enable|disable|toggle|status|log`: argument parsing and one call into the plugin each.

local M = {}

M.subcommands = { 'enable', 'disable', 'toggle', 'status', 'log' }

local function status_lines()
  local plugin = require('diffusion_copilot')
  local info = plugin.info()
  local status = info.status or {}
  local lines = {
    ('enabled: %s'):format(info.enabled),
    ('ui: %s'):format(info.ui or 'not set up'),
    ('server: %s'):format(
      info.client_id and ('running (client %d)'):format(info.client_id) or 'not attached here'
    ),
    ('engine: %s%s'):format(
      status.state or 'unknown',
      status.message and (' (' .. status.message .. ')') or ''
    ),
    ('model: %s'):format(status.model or 'unknown'),
    ('last latency: %s'):format(
      status.lastLatencyMs and (math.floor(status.lastLatencyMs) .. ' ms') or 'none yet'
    ),
  }
  return lines
end

--- The log to open: the configured server log file, else Neovim's LSP log (where server stderr goes).
---@return string
function M.log_path()
  local info = require('diffusion_copilot').info()
  local configured = info.config and info.config.server.log_file
  if configured then
    return vim.fs.normalize(configured)
  end
  return vim.lsp.get_log_path()
end

---@param args {fargs: string[]}
function M.run(args)
  local plugin = require('diffusion_copilot')
  local sub = args.fargs[1] or 'status'
  if sub == 'enable' then
    plugin.set_enabled(true)
  elseif sub == 'disable' then
    plugin.set_enabled(false)
  elseif sub == 'toggle' then
    plugin.set_enabled(not plugin.is_enabled())
  elseif sub == 'status' then
    vim.api.nvim_echo({ { table.concat(status_lines(), '\n') } }, true, {})
  elseif sub == 'log' then
    vim.cmd.split(vim.fn.fnameescape(M.log_path()))
  else
    vim.notify(
      ('DiffusionCopilot: unknown subcommand %q (expected %s)'):format(sub, table.concat(M.subcommands, '|')),
      vim.log.levels.ERROR
    )
  end
end

---@param arg_lead string
---@return string[]
function M.complete(arg_lead)
  return vim.tbl_filter(function(name)
    return vim.startswith(name, arg_lead)
  end, M.subcommands)
end

return M
