-- Insert-mode keymaps for the plugin's actions, and the normal-mode keys of next-edit suggestions. Each key falls
-- through to its usual meaning when there is nothing for it to do (so <Tab> still indents when no suggestion is
-- shown, and still jumps forward in the jump list when no next edit is).

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

---@class (exact) diffusion_copilot.NextEditActions
---@field jump fun(): boolean
---@field apply fun(): boolean
---@field jump_or_apply fun(): boolean

--- What each next-edit key does: one key for both is "jump to it, then apply it" (jump_or_apply).
---@param keys diffusion_copilot.NextEditConfig
---@param actions diffusion_copilot.NextEditActions
---@return table<string, {desc: string, run: fun(): boolean}> lhs -> binding
function M.next_edit_bindings(keys, actions)
  if keys.jump and keys.jump == keys.apply then
    return { [keys.jump] = { desc = 'Jump to the next edit, then apply it', run = actions.jump_or_apply } }
  end
  local bindings = {}
  if keys.jump then
    bindings[keys.jump] = { desc = 'Jump to the next edit', run = actions.jump }
  end
  if keys.apply then
    bindings[keys.apply] = { desc = 'Apply the next edit', run = actions.apply }
  end
  return bindings
end

---@param keys diffusion_copilot.NextEditConfig
---@param actions diffusion_copilot.NextEditActions
function M.set_next_edit(keys, actions)
  for lhs, binding in pairs(M.next_edit_bindings(keys, actions)) do
    -- not an expr mapping: those may not move the cursor or change the text (textlock)
    vim.keymap.set('n', lhs, function()
      if not binding.run() then
        vim.api.nvim_feedkeys(vim.keycode(lhs), 'n', false)
      end
    end, { silent = true, desc = 'DiffusionCopilot: ' .. binding.desc })
  end
end

return M
