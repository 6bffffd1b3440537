-- A suggestion as the user sees it: which text is still to come after what was typed, how it is drawn, and
-- which part each accept key inserts. Pure functions over strings; no buffers, windows or LSP here.

local M = {}

---@class (exact) diffusion_copilot.Ghost
---@field text string What is still to be inserted at the cursor.
---@field lines string[] `text` split on newlines: the first is drawn inline, the rest as virtual lines.

--- The text of an inline completion item (a snippet's raw value for snippets).
---@param insert_text string|{kind: string, value: string}
---@return string
function M.item_text(insert_text)
  if type(insert_text) == 'table' then
    return insert_text.value
  end
  return insert_text
end

--- What remains to show at the cursor: the item text less what the user already typed since the item's start.
---@param text string item text, to be inserted at `start_col` of the cursor line
---@param line string the cursor line
---@param start_col integer 0-based byte column where the item starts (the range start, else the cursor)
---@param cursor_col integer 0-based byte column of the cursor
---@return diffusion_copilot.Ghost|nil ghost nil when the typed text no longer agrees with the item
function M.ghost(text, line, start_col, cursor_col)
  local typed = line:sub(start_col + 1, cursor_col)
  if text:sub(1, #typed) ~= typed then
    return nil
  end
  local rest = text:sub(#typed + 1)
  if rest == '' then
    return nil
  end
  return { text = rest, lines = vim.split(rest, '\n', { plain = true }) }
end

--- The next word of `text`: leading whitespace (newlines included), then a run of word characters or a run
--- of other non-space characters.
---@param text string
---@return string
function M.next_word(text)
  local space = text:match('^%s*')
  local rest = text:sub(#space + 1)
  local word = rest:match('^[%w_]+') or rest:match('^[^%w_%s]+') or ''
  return space .. word
end

--- The rest of the current line of `text`; when `text` starts with a line break, that break and the next line.
---@param text string
---@return string
function M.next_line(text)
  if text:sub(1, 1) == '\n' then
    return '\n' .. (text:sub(2):match('^[^\n]*'))
  end
  return text:match('^[^\n]*')
end

--- The part an accept key takes from the ghost text.
---@param text string
---@param part 'all'|'word'|'line'
---@return string
function M.part(text, part)
  if part == 'word' then
    return M.next_word(text)
  elseif part == 'line' then
    return M.next_line(text)
  end
  return text
end

--- The 0-based byte column of an LSP `character` offset in `line`, clamped to the line.
---@param line string
---@param character integer
---@param encoding 'utf-8'|'utf-16'|'utf-32'
---@return integer
function M.byte_col(line, character, encoding)
  if encoding == 'utf-8' then
    return math.min(character, #line)
  end
  local ok, col
  if vim.fn.has('nvim-0.11') == 1 then
    ok, col = pcall(vim.str_byteindex, line, encoding, character, false)
  else
    ok, col = pcall(vim.str_byteindex, line, character, encoding == 'utf-16')
  end
  return ok and math.min(col, #line) or #line
end

--- The row and column the cursor ends on after inserting `text` at (row, col); both 0-based.
---@param row integer
---@param col integer
---@param text string
---@return integer row
---@return integer col
function M.end_position(row, col, text)
  local lines = vim.split(text, '\n', { plain = true })
  if #lines == 1 then
    return row, col + #text
  end
  return row + #lines - 1, #lines[#lines]
end

return M
