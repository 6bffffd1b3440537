-- Assertions for the Lua unit tests: equality with a readable message.
local M = {}

function M.eq(expected, actual, what)
  if not vim.deep_equal(expected, actual) then
    error(
      ('%sexpected %s, got %s'):format(
        what and (what .. ': ') or '',
        vim.inspect(expected),
        vim.inspect(actual)
      ),
      2
    )
  end
end

return M
