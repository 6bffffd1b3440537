-- Runs the plugin's pure-Lua unit tests: `nvim -l tests/run.lua [FILE...]` from editors/nvim.
-- Each tests/test_*.lua returns a table of name -> function; a test fails by raising an error.

local root = vim.fs.dirname(vim.fs.dirname(vim.fs.normalize(vim.fn.fnamemodify(arg[0], ':p'))))
vim.opt.rtp:prepend(root)

local files = #arg > 0 and arg or vim.fn.glob(root .. '/tests/test_*.lua', false, true)
table.sort(files)
local passed, failed = 0, 0
for _, file in ipairs(files) do
  local cases = dofile(file)
  local names = vim.tbl_keys(cases)
  table.sort(names)
  for _, name in ipairs(names) do
    local ok, err = xpcall(cases[name], debug.traceback)
    local label = vim.fn.fnamemodify(file, ':t:r') .. '.' .. name
    if ok then
      passed = passed + 1
      io.stdout:write('ok   ' .. label .. '\n')
    else
      failed = failed + 1
      io.stdout:write('FAIL ' .. label .. '\n' .. tostring(err) .. '\n')
    end
  end
end
io.stdout:write(('%d passed, %d failed\n'):format(passed, failed))
os.exit(failed == 0 and passed > 0 and 0 or 1)
