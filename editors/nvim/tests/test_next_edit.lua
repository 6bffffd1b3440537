local ne = require('diffusion_copilot.next_edit')
local eq = dofile(vim.fs.dirname(debug.getinfo(1, 'S').source:sub(2)) .. '/expect.lua').eq

local function edit(line, first, last, text)
  local range = { start = { line = line, character = first }, ['end'] = { line = line, character = last } }
  return { edits = { { text = text, range = range, textDocument = { uri = 'x', version = 1 } } } }
end

return {
  show_jump_apply = function()
    local buf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_set_current_buf(buf)
    vim.api.nvim_buf_set_lines(buf, 0, -1, false, { 'def total(items):', '    for x in xs:', '        pass' })
    eq(true, ne.show(buf, 0, edit(1, 13, 15, 'items')))
    eq(2, #vim.api.nvim_buf_get_extmarks(buf, -1, 0, -1, {})) -- old text struck through, new text as virtual lines
    eq(true, ne.jump())
    eq({ 2, 13 }, vim.api.nvim_win_get_cursor(0))
    eq(true, ne.apply())
    eq('    for x in items:', vim.api.nvim_buf_get_lines(buf, 1, 2, false)[1])
    eq(false, ne.apply()) -- applied: nothing left
  end,
  a_rename_at_two_sites_shows_both_jumps_to_the_first_and_applies_both = function()
    local buf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_set_current_buf(buf)
    vim.api.nvim_buf_set_lines(
      buf,
      0,
      -1,
      false,
      { 'def total(items):', '    for x in xs:', '        print(xs)' }
    )
    vim.api.nvim_win_set_cursor(0, { 1, 0 })
    local result = edit(1, 13, 15, 'items')
    result.edits[2] = edit(2, 14, 16, 'items').edits[1]
    eq(true, ne.show(buf, 0, result))
    eq(4, #vim.api.nvim_buf_get_extmarks(buf, -1, 0, -1, {})) -- two struck-through ranges, two virtual lines
    eq(true, ne.jump_or_apply()) -- jumps to the first
    eq({ 2, 13 }, vim.api.nvim_win_get_cursor(0))
    vim.api.nvim_win_set_cursor(0, { 3, 0 }) -- on the second edit's line <Tab> applies too
    eq(true, ne.is_at_edit())
    eq(true, ne.jump_or_apply())
    eq({ '    for x in items:', '        print(items)' }, vim.api.nvim_buf_get_lines(buf, 1, 3, false))
    eq(nil, ne.get(buf))
  end,
  tab_applies_from_any_line_of_a_multi_line_edit = function()
    local buf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_set_current_buf(buf)
    vim.api.nvim_buf_set_lines(buf, 0, -1, false, { 'a = 1', 'b = 2', 'c = 3', 'd = 4' })
    local result = edit(1, 0, 5, 'b = 20\nc = 30')
    result.edits[1].range['end'] = { line = 2, character = 5 }
    eq(true, ne.show(buf, 0, result))
    vim.api.nvim_win_set_cursor(0, { 3, 0 }) -- inside the edit, below its first line
    eq(true, ne.is_at_edit())
    eq(true, ne.jump_or_apply())
    eq({ 'a = 1', 'b = 20', 'c = 30', 'd = 4' }, vim.api.nvim_buf_get_lines(buf, 0, -1, false))
  end,
  no_edits_show_nothing_and_clear_removes = function()
    local buf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_set_current_buf(buf)
    vim.api.nvim_buf_set_lines(buf, 0, -1, false, { 'a = xs' })
    eq(false, ne.show(buf, 0, { edits = {} }))
    eq(true, ne.show(buf, 0, edit(0, 4, 6, 'items')))
    ne.clear(buf)
    eq(0, #vim.api.nvim_buf_get_extmarks(buf, -1, 0, -1, {}))
    eq(false, ne.jump())
  end,
  tab_jumps_to_an_edit_elsewhere_then_applies_it = function()
    local buf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_set_current_buf(buf)
    vim.api.nvim_buf_set_lines(buf, 0, -1, false, { 'def total(items):', '    for x in xs:', '        pass' })
    vim.api.nvim_win_set_cursor(0, { 1, 0 })
    eq(true, ne.show(buf, 0, edit(1, 13, 15, 'items')))
    eq(false, ne.is_at_edit())
    eq(true, ne.jump_or_apply()) -- jumps
    eq({ 2, 13 }, vim.api.nvim_win_get_cursor(0))
    eq('    for x in xs:', vim.api.nvim_buf_get_lines(buf, 1, 2, false)[1])
    eq(true, ne.jump_or_apply()) -- applies
    eq('    for x in items:', vim.api.nvim_buf_get_lines(buf, 1, 2, false)[1])
    eq(nil, ne.get(buf))
  end,
  any_edit_clears_the_suggestion = function()
    local buf = vim.api.nvim_create_buf(false, true)
    vim.api.nvim_set_current_buf(buf)
    vim.api.nvim_buf_set_lines(buf, 0, -1, false, { 'a = xs', 'b = xs' })
    ne.attach(buf, 0, function()
      return true
    end)
    eq(true, ne.show(buf, 0, edit(1, 4, 6, 'items')))
    vim.cmd('normal! x') -- TextChanged comes from the main loop: feed the edit as a user would
    vim.api.nvim_exec_autocmds('TextChanged', { buffer = buf })
    eq(nil, ne.get(buf))
    eq(0, #vim.api.nvim_buf_get_extmarks(buf, ne.namespace, 0, -1, {}))
    ne.detach(buf)
    eq(false, ne.is_attached(buf))
  end,
}
