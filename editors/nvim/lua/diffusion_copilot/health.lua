-- `:checkhealth diffusion_copilot`: Neovim version, the server command, the engine and its model, the options.
-- Every wait is bounded.

local M = {}

local health = vim.health
local SERVER_CHECK_TIMEOUT_MS = 15000

local function check_nvim()
  health.start('Neovim')
  local version = tostring(vim.version())
  if vim.fn.has('nvim-0.10') == 0 then
    health.error(
      ('Neovim %s is too old'):format(version),
      'Install Neovim 0.10 or newer (0.12+ recommended).'
    )
  elseif require('diffusion_copilot.builtin').is_available() then
    health.ok(('Neovim %s: built-in vim.lsp.inline_completion available'):format(version))
  else
    health.ok(('Neovim %s: ghost text drawn with extmarks (0.12+ uses the built-in)'):format(version))
  end
end

---@param config diffusion_copilot.Config
local function check_server(config)
  health.start('Language server')
  local cmd = config.server.cmd
  local exe = vim.fn.exepath(cmd[1])
  if exe == '' then
    health.error(('server command not found: %s'):format(cmd[1]), {
      'pip install diffusion-copilot',
      'or set server.cmd in setup() to the full path of diffusion-copilot',
    })
    return
  end
  health.ok(('server command: %s'):format(exe))
  -- `serve --help` imports the package and the server without starting anything.
  local probe = vim.list_extend(vim.list_slice(cmd, 1, #cmd), { '--help' })
  local ok, result = pcall(function()
    return vim.system(probe, { text = true }):wait(SERVER_CHECK_TIMEOUT_MS)
  end)
  if not ok then
    health.error(('could not run %s: %s'):format(table.concat(probe, ' '), result))
  elseif result.code ~= 0 then
    local why = vim.trim((result.stderr or '') .. (result.stdout or ''))
    health.error(('%s failed (exit %s): %s'):format(table.concat(probe, ' '), result.code, why:sub(-400)))
  else
    health.ok('the server imports and runs (' .. table.concat(probe, ' ') .. ')')
  end
end

local function check_engine()
  health.start('Engine')
  -- :checkhealth runs in its own buffer: look at any running client of the plugin
  local client = vim.lsp.get_clients({ name = require('diffusion_copilot.client').name })[1]
  if not client then
    health.info('no server running: open a file the plugin serves to check the engine')
    return
  end
  local status = require('diffusion_copilot.status').get(client.id)
  if not status then
    health.warn(
      'the server has not reported the engine status yet',
      'Wait a moment and run :checkhealth again.'
    )
  elseif status.state == 'error' then
    health.error('engine error: ' .. tostring(status.message), ':DiffusionCopilot log shows the details.')
  elseif status.state == 'loading' then
    health.warn(
      'the engine is still loading the model' .. (status.message and (': ' .. status.message) or '')
    )
  else
    health.ok(('engine reachable: %s'):format(status.state))
  end
  if status and status.model then
    health.ok('model: ' .. status.model)
  end
  if status and status.lastLatencyMs then
    health.info(('last completion latency: %d ms'):format(math.floor(status.lastLatencyMs)))
  end
end

function M.check()
  check_nvim()
  local info = require('diffusion_copilot').info()
  if not info.config then
    health.start('Setup')
    health.warn('setup() has not been called', "Add require('diffusion_copilot').setup() to your config.")
    return
  end
  health.start('Setup')
  health.ok(('enabled: %s, ui: %s'):format(info.enabled, info.ui))
  check_server(info.config)
  check_engine()
end

return M
