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
  announcements_say_loading_ready_and_errors_once = function()
    local levels = vim.log.levels
    local function said(previous, current)
      return { status.announcement(previous, current) }
    end
    eq(
      { 'Diffusion Copilot: loading the model: loading /m', levels.INFO },
      said(nil, { state = 'loading', message = 'loading /m' })
    )
    eq({}, said({ state = 'loading' }, { state = 'loading', message = 'still' }))
    eq(
      { 'Diffusion Copilot: ready (/m)', levels.INFO },
      said({ state = 'loading' }, { state = 'ready', model = '/m' })
    )
    eq(levels.WARN, said({ state = 'loading' }, { state = 'ready', hasRandomWeights = true })[2])
    eq({}, said(nil, { state = 'ready' })) -- an engine another editor loaded: nothing to wait for
    eq({}, said({ state = 'ready' }, { state = 'busy' }))
    eq({}, said({ state = 'busy' }, { state = 'ready', lastLatencyMs = 3 }))
    eq(levels.ERROR, said({ state = 'ready' }, { state = 'error', message = 'out of memory' })[2])
  end,
  handler_notifies_only_when_asked = function()
    local seen = {}
    local original = vim.notify
    vim.notify = function(message, level)
      seen[#seen + 1] = { message, level }
    end
    local ok, err = pcall(function()
      status.handler(true)(nil, { state = 'loading' }, { client_id = 9 })
      status.handler(true)(nil, { state = 'loading' }, { client_id = 9 })
      status.handler(false)(nil, { state = 'loading' }, { client_id = 10 })
    end)
    vim.notify = original
    status.forget(9)
    status.forget(10)
    assert(ok, err)
    eq({ { 'Diffusion Copilot: loading the model', vim.log.levels.INFO } }, seen)
  end,
  malformed_notification_is_ignored = function()
    status.on_status(nil, { message = 'no state' }, { client_id = 8 })
    status.on_status(nil, 'garbage', { client_id = 8 })
    eq(nil, status.get(8))
  end,
}
