-- The plugin's options: defaults, validation and merging. Owns no state; setup() keeps the merged result.
-- `settings` is sent to the language server as the `diffusionCopilot` section and mirrors its schema.

local M = {}

---@class (exact) diffusion_copilot.ServerConfig
---@field cmd string[] Command that starts the language server on stdio.
---@field root_markers string[] Files or folders that mark a workspace root.
---@field log_file string|nil Server log file opened by `:DiffusionCopilot log` (nil: Neovim's LSP log).

---@class (exact) diffusion_copilot.SuggestionConfig
---@field auto_trigger boolean Request completions while typing; false: only on the trigger key.
---@field debounce_ms integer Pause after the last keystroke before an automatic request (extmark UI).
---@field ui 'auto'|'builtin'|'extmark' 'auto': vim.lsp.inline_completion on 0.12+ (if auto_trigger), else extmarks.
---@field hl_group string Highlight group of the ghost text drawn by the extmark UI.

---@class (exact) diffusion_copilot.KeymapConfig Insert-mode keys; false leaves a key unmapped.
---@field accept string|false Accept the whole suggestion; falls through to the key when nothing is shown.
---@field accept_word string|false Accept the next word.
---@field accept_line string|false Accept the rest of the current line (or the next line).
---@field next string|false Next alternative; asks for alternatives when nothing is shown.
---@field prev string|false Previous alternative.
---@field dismiss string|false Hide the suggestion.
---@field trigger string|false Ask for a suggestion now (with alternatives).

---@class (exact) diffusion_copilot.NextEditConfig Normal-mode keys of next-edit suggestions; false leaves one unmapped.
---@field jump string|false Move to the suggested edit; the same key as `apply` jumps first, then applies.
---@field apply string|false Apply the suggested edit.

---@class (exact) diffusion_copilot.Config
---@field enabled boolean Start enabled (`:DiffusionCopilot toggle` switches at run time).
---@field notify_progress boolean Tell with vim.notify when the engine loads, is ready, or fails.
---@field filetypes table<string, boolean> Per-filetype switch; the key '*' is the default for the rest.
---@field server diffusion_copilot.ServerConfig
---@field suggestion diffusion_copilot.SuggestionConfig
---@field keymaps diffusion_copilot.KeymapConfig
---@field next_edit diffusion_copilot.NextEditConfig Asking and showing are switched by settings.nextEdit.enabled.
---@field settings table<string, any> The `diffusionCopilot` section: all of it in init_options, the part a workspace may set as settings.

---@return diffusion_copilot.Config
function M.defaults()
  return {
    enabled = true,
    notify_progress = true,
    filetypes = { ['*'] = true, help = false, gitcommit = false, gitrebase = false, ['.'] = false },
    server = {
      cmd = { 'diffusion-copilot', 'serve' },
      root_markers = { '.git', 'pyproject.toml', 'package.json', 'Cargo.toml', 'go.mod' },
      log_file = nil,
    },
    suggestion = { auto_trigger = true, debounce_ms = 150, ui = 'auto', hl_group = 'DiffusionCopilotGhost' },
    keymaps = {
      accept = '<Tab>',
      accept_word = '<M-Right>',
      accept_line = '<M-Down>',
      next = '<M-]>',
      prev = '<M-[>',
      dismiss = '<C-]>',
      trigger = '<M-\\>',
    },
    next_edit = { jump = '<Tab>', apply = '<Tab>' },
    settings = require('diffusion_copilot.settings').defaults(),
  }
end

local function is_key(value)
  return value == false or type(value) == 'string'
end

local function is_string_list(value)
  return vim.islist(value)
    and #value > 0
    and vim.iter(value):all(function(v)
      return type(v) == 'string'
    end)
end

--- Problems in a merged config, one readable line each; empty when it is valid.
---@param config diffusion_copilot.Config
---@return string[]
function M.validate(config)
  local problems = {}
  local function check(name, value, ok, expected)
    if not ok(value) then
      problems[#problems + 1] = ('%s: expected %s, got %s'):format(name, expected, vim.inspect(value))
    end
  end
  local function typed(t)
    return function(v)
      return type(v) == t
    end
  end
  check('enabled', config.enabled, typed('boolean'), 'a boolean')
  check('notify_progress', config.notify_progress, typed('boolean'), 'a boolean')
  check('filetypes', config.filetypes, typed('table'), 'a table')
  check('server.cmd', config.server.cmd, is_string_list, 'a non-empty list of strings')
  check('server.root_markers', config.server.root_markers, vim.islist, 'a list')
  check('server.log_file', config.server.log_file, function(v)
    return v == nil or type(v) == 'string'
  end, 'a path or nil')
  check('suggestion.auto_trigger', config.suggestion.auto_trigger, typed('boolean'), 'a boolean')
  check('suggestion.debounce_ms', config.suggestion.debounce_ms, function(v)
    return type(v) == 'number' and v >= 0 and v == math.floor(v)
  end, 'a whole number of milliseconds >= 0')
  check('suggestion.ui', config.suggestion.ui, function(v)
    return v == 'auto' or v == 'builtin' or v == 'extmark'
  end, "'auto', 'builtin' or 'extmark'")
  check('suggestion.hl_group', config.suggestion.hl_group, typed('string'), 'a highlight group name')
  for _, name in ipairs({ 'accept', 'accept_word', 'accept_line', 'next', 'prev', 'dismiss', 'trigger' }) do
    check('keymaps.' .. name, config.keymaps[name], is_key, 'a key (string) or false')
  end
  for _, name in ipairs({ 'jump', 'apply' }) do
    check('next_edit.' .. name, config.next_edit[name], is_key, 'a key (string) or false')
  end
  check('settings', config.settings, typed('table'), 'a table')
  check('settings.nextEdit', config.settings.nextEdit, typed('table'), 'a table')
  return problems
end

--- Defaults deep-merged with the user's options. Unknown keys are reported by validate's caller.
---@param opts table|nil
---@return diffusion_copilot.Config merged
---@return string[] problems unknown keys and invalid values; on any, the defaults stand
function M.merge(opts)
  local defaults = M.defaults()
  if opts == nil then
    return defaults, {}
  end
  if type(opts) ~= 'table' then
    return defaults, { 'setup(opts): expected a table, got ' .. type(opts) }
  end
  local problems = M.unknown_keys(defaults, opts, '')
  local merged = vim.tbl_deep_extend('force', defaults, opts)
  -- lists replace, never merge element-wise; settings merge one level deep (their values are lists or scalars)
  local server = type(opts.server) == 'table' and opts.server or {}
  merged.server.cmd = server.cmd or defaults.server.cmd
  merged.server.root_markers = server.root_markers or defaults.server.root_markers
  if type(opts.settings) == 'table' then
    merged.settings = vim.tbl_extend('force', defaults.settings, opts.settings)
    if type(opts.settings.nextEdit) == 'table' then -- a group merges key by key
      merged.settings.nextEdit = vim.tbl_extend('force', defaults.settings.nextEdit, opts.settings.nextEdit)
    end
  end
  vim.list_extend(problems, M.validate(merged))
  if #problems > 0 then
    return defaults, problems
  end
  return merged, problems
end

--- Keys in `opts` that the defaults do not have (free-form tables are not descended into).
---@param defaults table
---@param opts table
---@param path string
---@return string[]
function M.unknown_keys(defaults, opts, path)
  local problems = {}
  local free_form = { filetypes = true, settings = true, cmd = true, root_markers = true }
  for key, value in pairs(opts) do
    local name = path .. tostring(key)
    if defaults[key] == nil and not (path == 'server.' and key == 'log_file') then
      problems[#problems + 1] = ('%s: unknown option'):format(name)
    elseif type(value) == 'table' and type(defaults[key]) == 'table' and not free_form[key] then
      vim.list_extend(problems, M.unknown_keys(defaults[key], value, name .. '.'))
    end
  end
  return problems
end

return M
