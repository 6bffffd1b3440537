local status = require('diffusion_copilot.status')
local eq = dofile(vim.fs.dirname(debug.getinfo(1, 'S').source:sub(2)) .. '/expect.lua').eq

return {
  format_table = function()
    eq('DC off', status.format({ state = 'ready' }, false))
    eq('', status.format(nil, true))
    eq('DC loading', status.format({ state = 'loading' }, true))
    eq('DC ready 143ms', status.format({ state = 'ready', lastLatencyMs = 142.6 }, true))
    eq('DC ready (random weights)', status.format({ state = 'ready', hasRandomWeights = true }, true))
  end,
  notification_is_kept_per_client_and_nulls_dropped = function()
    local seen
    vim.api.nvim_create_autocmd('User', {
      pattern = 'DiffusionCopilotStatus',
      once = true,
      callback = function(ev)
        seen = ev.data.state
      end,
    })
    status.on_status(nil, { state = 'busy', message = vim.NIL, lastLatencyMs = 10 }, { client_id = 7 })
    eq({ state = 'busy', lastLatencyMs = 10 }, status.get(7))
    eq('busy', seen)
    status.forget(7)
    eq(nil, status.get(7))
  end,
  malformed_notification_is_ignored = function()
    status.on_status(nil, { message = 'no state' }, { client_id = 8 })
    status.on_status(nil, 'garbage', { client_id = 8 })
    eq(nil, status.get(8))
  end,
}
