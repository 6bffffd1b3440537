local s = require('diffusion_copilot.suggestion')
local eq = dofile(vim.fs.dirname(debug.getinfo(1, 'S').source:sub(2)) .. '/expect.lua').eq

return {
  ghost_strips_what_was_typed = function()
    eq({ text = 'rn x\n  end', lines = { 'rn x', '  end' } }, s.ghost('return x\n  end', '  retu', 2, 6))
  end,
  ghost_at_cursor_without_range = function()
    eq({ text = '(a)', lines = { '(a)' } }, s.ghost('(a)', 'f', 1, 1))
  end,
  ghost_is_nil_when_typing_diverges = function()
    eq(nil, s.ghost('return x', 'rex', 0, 3))
  end,
  ghost_is_nil_when_all_typed = function()
    eq(nil, s.ghost('ab', 'ab', 0, 2))
  end,
  next_word_table = function()
    local cases = {
      { 'foo(bar)', 'foo' },
      { '(bar)', '(' },
      { '  x = 1', '  x' },
      { '\n    return a + b', '\n    return' },
      { '.method()', '.' },
      { '', '' },
      { '   ', '   ' },
      { 'snake_case9 rest', 'snake_case9' },
    }
    for _, case in ipairs(cases) do
      eq(case[2], s.next_word(case[1]), vim.inspect(case[1]))
    end
  end,
  next_line_table = function()
    local cases = {
      { 'a = 1\nb = 2', 'a = 1' },
      { '\n    b = 2\n    c', '\n    b = 2' },
      { 'single', 'single' },
      { '\n', '\n' },
    }
    for _, case in ipairs(cases) do
      eq(case[2], s.next_line(case[1]), vim.inspect(case[1]))
    end
  end,
  part_all_is_everything = function()
    eq('a\nb', s.part('a\nb', 'all'))
  end,
  word_and_line_parts_add_up_to_the_text = function()
    local text = 'x = foo(1)\n    return x\n'
    local taken, rest = '', text
    while rest ~= '' do
      local piece = s.part(rest, 'word')
      assert(#piece > 0, 'no progress at ' .. vim.inspect(rest))
      taken, rest = taken .. piece, rest:sub(#piece + 1)
    end
    eq(text, taken)
  end,
  byte_col_utf16_counts_surrogate_pairs = function()
    local line = 'a😀b' -- 😀 is 4 bytes, 2 UTF-16 units
    eq(1, s.byte_col(line, 1, 'utf-16'))
    eq(5, s.byte_col(line, 3, 'utf-16'))
    eq(5, s.byte_col(line, 2, 'utf-32'))
    eq(#line, s.byte_col(line, 99, 'utf-16'))
  end,
  item_text_of_snippet_is_its_value = function()
    eq('f($1)', s.item_text({ kind = 'snippet', value = 'f($1)' }))
    eq('plain', s.item_text('plain'))
  end,
  end_position_single_and_multi_line = function()
    eq({ 3, 9 }, { s.end_position(3, 5, 'abcd') })
    eq({ 5, 2 }, { s.end_position(3, 5, 'x\ny\nzz') })
  end,
}
