local keymaps = require('diffusion_copilot.keymaps')
local eq = dofile(vim.fs.dirname(debug.getinfo(1, 'S').source:sub(2)) .. '/expect.lua').eq

return {
  each_binding_calls_its_action = function()
    local calls = {}
    local actions = {
      accept = function(part)
        calls[#calls + 1] = 'accept:' .. part
        return true
      end,
      cycle = function(delta)
        calls[#calls + 1] = 'cycle:' .. delta
        return true
      end,
      dismiss = function()
        calls[#calls + 1] = 'dismiss'
        return false
      end,
      trigger = function()
        calls[#calls + 1] = 'trigger'
        return true
      end,
    }
    local bindings = keymaps.bindings(actions)
    for _, name in ipairs({ 'accept', 'accept_word', 'accept_line', 'next', 'prev', 'dismiss', 'trigger' }) do
      bindings[name].run()
    end
    eq({ 'accept:all', 'accept:word', 'accept:line', 'cycle:1', 'cycle:-1', 'dismiss', 'trigger' }, calls)
  end,
  keys_fall_through_when_nothing_is_shown = function()
    keymaps.set({ accept = '<Tab>', dismiss = false }, {
      accept = function()
        return false
      end,
      cycle = function()
        return false
      end,
      dismiss = function()
        return false
      end,
      trigger = function()
        return false
      end,
    })
    local map = vim.fn.maparg('<Tab>', 'i', false, true)
    eq(1, map.expr)
    eq(vim.keycode('<Tab>'), map.callback())
    eq({}, vim.fn.maparg('<C-]>', 'i', false, true))
  end,
  next_edit_one_key_jumps_then_applies_two_keys_split = function()
    local actions = {
      jump = function()
        return 'jump'
      end,
      apply = function()
        return 'apply'
      end,
      jump_or_apply = function()
        return 'jump_or_apply'
      end,
    }
    local one = keymaps.next_edit_bindings({ jump = '<Tab>', apply = '<Tab>' }, actions)
    eq({ '<Tab>' }, vim.tbl_keys(one))
    eq('jump_or_apply', one['<Tab>'].run())
    local two = keymaps.next_edit_bindings({ jump = ']e', apply = false }, actions)
    eq({ ']e' }, vim.tbl_keys(two))
    eq('jump', two[']e'].run())
  end,
}
