-- experiments/ablation.lua — the main job: the paper's ablation (Liu et al. 2019, Table 2).
--
-- Gets the teacher (its cached checkpoint, or trains it once), then trains the student once
-- per configuration — baseline, +PI, +PI+PA, +PI+PA+HO — from the same seed and schedule,
-- evaluates val mIoU and prints the table in the paper's form, writing
-- results/ablation/{table.md, results.json, log.jsonl}.
--
--   skd-lua experiments/ablation.lua [--quick | --full] [--dataset camvid] [--seeds 3] [--view]
local E = require "skd.experiment"
local utils = require "skd.utils"

local opts = E.parse_args(arg, {
  {"dataset", "string", "synthetic", "synthetic | camvid | cityscapes"},
  {"data", "string", nil, "dataset folder (camvid: the SegNet layout; default ../shared/data/camvid/180x240)"},
  {"quick", "flag", nil, "a first look in a few minutes"},
  {"full", "flag", nil, "the long schedule"},
  {"seeds", "number", 1, "runs per configuration (mean ± std)"},
  {"seed", "number", 1, "first seed"},
  {"iterations", "number", nil, "student iterations per configuration (overrides the budget)"},
  {"teacher-iterations", "number", nil, "teacher iterations when it must be trained"},
  {"batch", "number", nil, "images per step"},
  {"size", "string", nil, "synthetic image size HxW"},
  {"train-n", "number", nil, "synthetic training images"},
  {"val-n", "number", nil, "synthetic validation images"},
  {"crop", "string", nil, "training crop HxW (default: the whole image)"},
  {"student-depth", "number", 18, "student ResNet depth"},
  {"student-width", "number", 0.5, "student width multiplier (1.0 or 0.5)"},
  {"teacher-depth", "number", 18, "teacher ResNet depth (18, 34, 50, 101)"},
  {"teacher-width", "number", 1.0, "teacher width multiplier"},
  {"lambda-pi", "number", 10, "pixel-wise weight"},
  {"lambda-pa", "number", 10, "pair-wise weight"},
  {"lambda-ho", "number", 0.1, "holistic weight"},
  {"beta", "number", 2, "pair-wise granularity (feature pixels per node side)"},
  {"configs", "string", "baseline,pi,pi+pa,pi+pa+ho", "which configurations to run"},
  {"class-weights", "string", "none", "none | median: median-frequency class weights in every CE"},
  {"retrain-teacher", "flag", nil, "train the teacher even if a checkpoint is cached"},
  {"results", "string", "results", "output folder"},
  {"view", "flag", nil, "open the live viewer window"},
  {"threads", "number", nil, "thread count (default: SKD_THREADS or all cores)"},
}, "usage: skd-lua experiments/ablation.lua [options]")

if opts.threads then skd.threads(opts.threads) end

-- Budgets: --quick in under 5 minutes, the default in under 20, on 2 cores (README records
-- the measured times). Explicit flags override them.
local budgets = {
  quick = {iterations = 60, teacher_iterations = 100, batch = 8, size = "48x64", train_n = 200, val_n = 50},
  default = {iterations = 160, teacher_iterations = 300, batch = 8, size = "64x96", train_n = 400, val_n = 100},
  full = {iterations = 2000, teacher_iterations = 4000, batch = 8, size = "128x256", train_n = 2000, val_n = 200},
}
local budget = budgets[opts.quick and "quick" or opts.full and "full" or "default"]
for k, v in pairs(budget) do if opts[k] == nil then opts[k] = v end end
if opts.dataset ~= "synthetic" then
  opts.crop = opts.crop or "176x240"   -- CamVid 180x240: a random crop (image mean/255 padding)
end
if opts.class_weights ~= "none" and opts.class_weights ~= "median" then
  io.stderr:write("ablation: --class-weights must be none or median, got " .. opts.class_weights .. "\n")
  os.exit(1)
end

local train_ds, val_ds = E.datasets(opts)
local num_classes = #train_ds.classes
local class_weights = E.class_weights(train_ds, opts)
local out_dir = opts.results .. "/ablation"
skd.mkdir(out_dir .. "/runs")

io.stderr:write(string.format("ablation: dataset %s (%d train, %d val, %d classes); student PSPNet-R%d(w%g), teacher PSPNet-R%d(w%g); %d iterations x batch %d, %d seed(s)\n",
  opts.dataset, #train_ds, #val_ds, num_classes, opts.student_depth, opts.student_width,
  opts.teacher_depth, opts.teacher_width, opts.iterations, opts.batch, opts.seeds))

local teacher, teacher_miou = E.get_teacher(train_ds, val_ds, opts, class_weights)
teacher:freeze()

local viewer
if opts.view then
  viewer = skd.viewer.open{title = "skd ablation", classes = train_ds.classes, palette = train_ds.palette}
end

local CONFIGS = {
  {key = "baseline", name = "baseline", weights = {pi = 0, pa = 0, ho = 0}},
  {key = "pi", name = "+PI", weights = {pi = opts.lambda_pi, pa = 0, ho = 0}},
  {key = "pi+pa", name = "+PI+PA", weights = {pi = opts.lambda_pi, pa = opts.lambda_pa, ho = 0}},
  {key = "pi+pa+ho", name = "+PI+PA+HO", weights = {pi = opts.lambda_pi, pa = opts.lambda_pa, ho = opts.lambda_ho}},
}
local wanted = {}
for k in opts.configs:gmatch("[^,]+") do wanted[k] = true end

local results = {}
for _, c in ipairs(CONFIGS) do
  if wanted[c.key] then
    local runs = {}
    for s = 0, opts.seeds - 1 do
      local seed = opts.seed + s
      skd.manual_seed(seed)
      local student = E.student(opts, num_classes)
      local critic = c.weights.ho > 0 and skd.models.discriminator{num_classes = num_classes, condition = "image"} or nil
      local loader = E.train_loader(train_ds, {dataset = opts.dataset, batch = opts.batch, seed = seed, crop = opts.crop})
      local log = string.format("%s/runs/%s-seed%d.jsonl", out_dir, c.key, seed)
      local t0 = skd.clock()
      local r = skd.distill{
        name = c.name .. " seed " .. seed, teacher = teacher, student = student, critic = critic,
        loader = loader, iterations = opts.iterations, batch = opts.batch, lr = 0.01,
        weights = c.weights, pairwise = {beta = opts.beta}, log = log, class_weights = class_weights,
        on_step = viewer and function(info)
          viewer:show{image = info.image[1], label = info.label[1], teacher = info.teacher[1],
                      student = info.student[1],
                      features = {teacher = info.features.teacher[1], student = info.features.student[1]},
                      losses = info.losses, iter = info.it}
          while viewer:paused() do viewer:poll(0.05) end
        end or nil,
        every = 10,
      }
      if r.interrupted then io.stderr:write("ablation: interrupted\n"); os.exit(130) end
      local seconds = skd.clock() - t0
      local cm = E.evaluate(student, val_ds, opts)
      runs[#runs + 1] = {seed = seed, miou = cm:miou(), seconds = seconds,
                         images_per_second = r.images_per_second, log = log, iou = cm:iou()}
      io.stderr:write(string.format("%s seed %d: val mIoU %.2f%% (%s)\n", c.name, seed,
                                    100 * cm:miou(), utils.duration(seconds)))
      c.params = student:num_parameters()
    end
    local mious, secs = {}, {}
    for i, r in ipairs(runs) do mious[i] = r.miou; secs[i] = r.seconds end
    local m, sd = utils.mean_std(mious)
    results[#results + 1] = {config = c.name, key = c.key, weights = c.weights, miou = m, miou_std = sd,
                             params = c.params, seconds = utils.mean_std(secs), runs = runs}
  end
end

-- The table in the paper's form.
local base = results[1] and results[1].key == "baseline" and results[1].miou or nil
local rows = {{"Configuration", "mIoU (%)", "Δ vs baseline", "Parameters (M)", "Train time"}}
for _, r in ipairs(results) do
  local miou = opts.seeds > 1 and string.format("%.2f ± %.2f", 100 * r.miou, 100 * r.miou_std)
                               or string.format("%.2f", 100 * r.miou)
  local delta = base and (r.key == "baseline" and "—" or string.format("%+.2f", 100 * (r.miou - base))) or "n/a"
  rows[#rows + 1] = {r.config, miou, delta, string.format("%.2f", r.params / 1e6), utils.duration(r.seconds)}
end
local header = string.format("Ablation on %s (%s), student PSPNet-ResNet%d (width %g), teacher PSPNet-ResNet%d (width %g, val mIoU %.2f%%), %d iterations x batch %d, %d seed(s).",
  opts.dataset, opts.size or "", opts.student_depth, opts.student_width, opts.teacher_depth,
  opts.teacher_width, 100 * (teacher_miou or 0), opts.iterations, opts.batch, opts.seeds)
print()
print(header)
print()
print(utils.format_table(rows))
skd.write_file(out_dir .. "/table.md", header .. "\n\n" .. utils.markdown_table(rows))
skd.write_file(out_dir .. "/results.json", utils.json{dataset = opts.dataset, options = opts,
  teacher_miou = teacher_miou, results = results} .. "\n")
-- one log for all runs: every line tagged with its configuration and seed
local lines = {}
for _, r in ipairs(results) do
  for _, run in ipairs(r.runs) do
    for line in (utils.read_file(run.log) or ""):gmatch("[^\n]+") do
      lines[#lines + 1] = string.format('{"config":%s,"seed":%d,%s', utils.json(r.key), run.seed, line:sub(2))
    end
  end
end
skd.write_file(out_dir .. "/log.jsonl", table.concat(lines, "\n") .. "\n")
io.stderr:write("ablation: wrote " .. out_dir .. "/{table.md,results.json,log.jsonl}\n")
if viewer then viewer:close() end
