local config = require('diffusion_copilot.config')
local eq = dofile(vim.fs.dirname(debug.getinfo(1, 'S').source:sub(2)) .. '/expect.lua').eq

return {
  defaults_are_valid = function()
    eq({}, config.validate(config.defaults()))
  end,
  merge_keeps_user_values = function()
    local merged, problems = config.merge({ suggestion = { debounce_ms = 20 }, keymaps = { accept = false } })
    eq({}, problems)
    eq(20, merged.suggestion.debounce_ms)
    eq(false, merged.keymaps.accept)
    eq('<M-]>', merged.keymaps.next)
  end,
  lists_replace_instead_of_merging = function()
    local merged = config.merge({
      server = { cmd = { '/opt/dc' } },
      settings = { disabledLanguages = { 'lua' } },
    })
    eq({ '/opt/dc' }, merged.server.cmd)
    eq({ 'lua' }, merged.settings.disabledLanguages)
    eq(16, merged.settings.maxSteps)
  end,
  bad_values_keep_the_defaults_and_say_why = function()
    local merged, problems = config.merge({ suggestion = { debounce_ms = -5, ui = 'fancy' } })
    eq(150, merged.suggestion.debounce_ms)
    eq('auto', merged.suggestion.ui)
    eq(2, #problems)
    assert(problems[1]:find('debounce_ms', 1, true) or problems[2]:find('debounce_ms', 1, true))
  end,
  unknown_keys_are_reported = function()
    local _, problems = config.merge({ suggestions = {}, keymaps = { acept = '<C-l>' } })
    table.sort(problems)
    eq({ 'keymaps.acept: unknown option', 'suggestions: unknown option' }, problems)
  end,
  log_file_may_be_set = function()
    local merged, problems = config.merge({ server = { log_file = '/tmp/dc.log' } })
    eq({}, problems)
    eq('/tmp/dc.log', merged.server.log_file)
  end,
  next_edit_settings_merge_key_by_key_and_keys_validate = function()
    local merged, problems = config.merge({
      settings = { nextEdit = { enabled = false } },
      next_edit = { apply = '<leader>a' },
    })
    eq({}, problems)
    eq({ enabled = false, minConfidence = 0.5, debounceMs = 300 }, merged.settings.nextEdit)
    eq({ jump = '<Tab>', apply = '<leader>a' }, merged.next_edit)
    local _, bad = config.merge({ next_edit = { jump = 1 }, settings = { nextEdit = true } })
    eq(2, #bad)
  end,
  not_a_table = function()
    local _, problems = config.merge('yes')
    eq(1, #problems)
  end,
}
