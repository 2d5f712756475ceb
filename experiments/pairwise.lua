-- experiments/pairwise.lua — the paper's pair-wise study (Liu et al. 2019, Tables 3–4), all
-- on top of the pixel-wise term: PA (ours) vs MIMIC vs AT vs LOCAL (α = 1), then the
-- granularity β × connection range α table for PA.
--
--   skd-lua experiments/pairwise.lua [--quick] [--dataset camvid]
local E = require "skd.experiment"
local utils = require "skd.utils"

local opts = E.parse_args(arg, {
  {"dataset", "string", "synthetic", "synthetic | camvid | cityscapes"},
  {"data", "string", nil, "dataset folder"},
  {"quick", "flag", nil, "a first look"},
  {"iterations", "number", nil, "student iterations per run"},
  {"teacher-iterations", "number", nil, "teacher iterations when it must be trained"},
  {"batch", "number", 8, "images per step"},
  {"size", "string", nil, "synthetic image size HxW"},
  {"train-n", "number", nil, "synthetic training images"},
  {"val-n", "number", nil, "synthetic validation images"},
  {"seed", "number", 1, "seed"},
  {"betas", "string", "1,2,4", "granularities for the β × α table"},
  {"alphas", "string", "1,2,full", "connection ranges for the β × α table"},
  {"results", "string", "results", "output folder"},
  {"threads", "number", nil, "thread count"},
}, "usage: skd-lua experiments/pairwise.lua [options]")
if opts.threads then skd.threads(opts.threads) end
local budget = opts.quick and {iterations = 40, teacher_iterations = 200, size = "64x96", train_n = 200, val_n = 48}
                           or {iterations = 300, teacher_iterations = 900, size = "96x128", train_n = 600, val_n = 100}
for k, v in pairs(budget) do if opts[k] == nil then opts[k] = v end end
if opts.dataset ~= "synthetic" then opts.crop = opts.crop or "176x240" end
opts.student_depth, opts.student_width = 18, 0.5

local train_ds, val_ds = E.datasets(opts)
local nc = #train_ds.classes
local teacher = E.get_teacher(train_ds, val_ds, opts)
teacher:freeze()

local function run(label, pairwise_term)
  skd.manual_seed(opts.seed)
  local student = E.student(opts, nc)
  local loader = E.train_loader(train_ds, {dataset = opts.dataset, batch = opts.batch, seed = opts.seed, crop = opts.crop})
  local extra = pairwise_term and pairwise_term(student) or nil
  local opt = skd.optim.sgd(extra and extra.params and {{params = student}, {params = extra.params}} or student,
                            {lr = 0.01, momentum = 0.9, weight_decay = 5e-4})
  local t0 = skd.clock()
  skd.distill{name = label, teacher = teacher, student = student, loader = loader, optimizer = opt,
              iterations = opts.iterations, batch = opts.batch,
              weights = {pi = 10, pa = extra and extra.weight or 0, ho = 0},
              pairwise = extra and extra.pairwise_opts, pairwise_fn = extra and extra.fn}
  local cm = E.evaluate(student, val_ds, opts)
  io.stderr:write(string.format("%s: val mIoU %.2f%% (%s)\n", label, 100 * cm:miou(), utils.duration(skd.clock() - t0)))
  return cm:miou()
end

-- Each comparison term is the pair-wise slot of skd.distill filled with another loss.
local function pa(beta, alpha)
  return function() return {weight = 10, pairwise_opts = {beta = beta, alpha = alpha}} end
end
local function mimic(student)
  local cs = 128 -- the student head width: its feat channels (E.student)
  local adapter = skd.nn.Conv2d(cs, E.teacher_spec(opts).head, 1, {bias = false})
  return {weight = 10, params = adapter, fn = function(fs, ft) return skd.losses.mimic(fs, ft, adapter) end}
end
local function at()
  return {weight = 10, fn = function(fs, ft) return skd.losses.attention_transfer(fs, ft) end}
end

local rows = {{"Method (all with PI)", "mIoU (%)"}}
local base = run("PI only", nil)
rows[#rows + 1] = {"PI only", string.format("%.2f", 100 * base)}
for _, m in ipairs({{"+ MIMIC", mimic}, {"+ AT", at}, {"+ LOCAL (α=1)", pa(1, 1)}, {"+ PA (ours, β=2, full)", pa(2, nil)}}) do
  rows[#rows + 1] = {m[1], string.format("%.2f", 100 * run(m[1], m[2]))}
end
local grid = {{"β \\ α"}}
local alphas = {}
for a in opts.alphas:gmatch("[^,]+") do alphas[#alphas + 1] = a; grid[1][#grid[1] + 1] = a == "full" and "full" or ("α=" .. a) end
for b in opts.betas:gmatch("[^,]+") do
  local row = {"β=" .. b}
  for _, a in ipairs(alphas) do
    row[#row + 1] = string.format("%.2f", 100 * run(string.format("PA β=%s α=%s", b, a), pa(tonumber(b), tonumber(a))))
  end
  grid[#grid + 1] = row
end
print(utils.format_table(rows))
print()
print(utils.format_table(grid))
local dir = opts.results .. "/pairwise"
skd.mkdir(dir)
skd.write_file(dir .. "/table.md", utils.markdown_table(rows) .. "\n" .. utils.markdown_table(grid))
io.stderr:write("pairwise: wrote " .. dir .. "/table.md\n")
