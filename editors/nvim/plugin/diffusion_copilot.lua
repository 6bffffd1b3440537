-- Registers :DiffusionCopilot only; everything else waits for require('diffusion_copilot').setup().
if vim.g.loaded_diffusion_copilot then
  return
end
vim.g.loaded_diffusion_copilot = true

vim.api.nvim_create_user_command('DiffusionCopilot', function(args)
  require('diffusion_copilot.commands').run(args)
end, {
  nargs = '?',
  desc = 'Diffusion Copilot: enable, disable, toggle, status, log',
  complete = function(arg_lead)
    return require('diffusion_copilot.commands').complete(arg_lead)
  end,
})
