-- Insert-mode keymaps for the plugin's actions. Each key falls through to its usual meaning when there is
-- nothing for it to do (so <Tab> still indents when no suggestion is shown).

local M = {}

---@class (exact) diffusion_copilot.Actions
---@field accept fun(part: 'all'|'word'|'line'|nil): boolean
---@field cycle fun(delta: integer): boolean
---@field dismiss fun(): boolean
---@field trigger fun(): boolean

--- What each configured key does; an action returning false lets the key through.
---@param actions diffusion_copilot.Actions
---@return table<string, {desc: string, run: fun(): boolean}>
function M.bindings(actions)
  return {
    accept = {
      desc = 'Accept the suggestion',
      run = function()
        return actions.accept('all')
      end,
    },
    accept_word = {
      desc = 'Accept the next word',
      run = function()
        return actions.accept('word')
      end,
    },
    accept_line = {
      desc = 'Accept the next line',
      run = function()
        return actions.accept('line')
      end,
    },
    next = {
      desc = 'Next alternative',
      run = function()
        return actions.cycle(1)
      end,
    },
    prev = {
      desc = 'Previous alternative',
      run = function()
        return actions.cycle(-1)
      end,
    },
    dismiss = { desc = 'Dismiss the suggestion', run = actions.dismiss },
    trigger = { desc = 'Ask for a suggestion', run = actions.trigger },
  }
end

---@param keymaps diffusion_copilot.KeymapConfig
---@param actions diffusion_copilot.Actions
function M.set(keymaps, actions)
  for name, binding in pairs(M.bindings(actions)) do
    local lhs = keymaps[name]
    if lhs then
      vim.keymap.set(
        'i',
        lhs,
        function()
          if binding.run() then
            return ''
          end
          return vim.keycode(lhs)
        end,
        { expr = true, replace_keycodes = false, silent = true, desc = 'DiffusionCopilot: ' .. binding.desc }
      )
    end
  end
end

return M
