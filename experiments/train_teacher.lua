-- experiments/train_teacher.lua — trains a PSPNet alone (cross-entropy + 0.4 aux) and saves
-- it with its val mIoU in the metadata. As the teacher (default) it goes to
-- results/teachers/<dataset>-pspnet-r<depth>-w<width>.safetensors, where the experiments
-- look for it instead of retraining; with --role student it trains a student baseline
-- (results/baselines/…), the figures issue 4 asks for.
--
--   skd-lua experiments/train_teacher.lua [--dataset camvid] [--depth 50] [--iterations 4000]
local E = require "skd.experiment"
local utils = require "skd.utils"

local opts = E.parse_args(arg, {
  {"dataset", "string", "synthetic", "synthetic | camvid | cityscapes"},
  {"data", "string", nil, "dataset folder"},
  {"role", "string", "teacher", "teacher | student"},
  {"depth", "number", nil, "ResNet depth (teacher default 18, student 18)"},
  {"width", "number", nil, "width multiplier (teacher default 1.0, student 0.5)"},
  {"head", "number", nil, "PSP head channels (teacher 512, student 128)"},
  {"iterations", "number", 900, "training iterations"},
  {"batch", "number", 8, "images per step"},
  {"size", "string", "96x128", "synthetic image size HxW"},
  {"crop", "string", nil, "training crop HxW"},
  {"train-n", "number", 600, "synthetic training images"},
  {"val-n", "number", 100, "synthetic validation images"},
  {"lr", "number", 0.01, "base learning rate (poly decay)"},
  {"seed", "number", 1, "seed"},
  {"class-weights", "string", "none", "none | median (median-frequency balancing of the CE)"},
  {"flip-eval", "flag", nil, "average the prediction with the mirrored image's"},
  {"resume", "flag", nil, "resume from the run's last checkpoint"},
  {"results", "string", "results", "output folder"},
  {"threads", "number", nil, "thread count"},
}, "usage: skd-lua experiments/train_teacher.lua [options]")
if opts.threads then skd.threads(opts.threads) end
if opts.role ~= "teacher" and opts.role ~= "student" then
  io.stderr:write("--role must be teacher or student\n"); os.exit(1)
end
local student = opts.role == "student"
if opts.class_weights ~= "none" and opts.class_weights ~= "median" then
  io.stderr:write("--class-weights must be none or median, got " .. opts.class_weights .. "\n"); os.exit(1)
end
if opts.dataset ~= "synthetic" then opts.crop = opts.crop or "176x240" end

local train_ds, val_ds = E.datasets(opts)
local nc = #train_ds.classes
local class_weights = E.class_weights(train_ds, opts)
local depth = opts.depth or 18
local width = opts.width or (student and 0.5 or 1.0)
local head = opts.head or (student and 128 or 512)
skd.manual_seed(opts.seed)
local net = skd.models.pspnet{backbone = {depth = depth, width = width, deep_stem = true, output_stride = 8},
                              num_classes = nc, head_channels = head, aux = true}
local name = string.format("%s-pspnet-r%d-w%g%s", opts.dataset, depth, width,
                           class_weights and ("-cw" .. opts.class_weights) or "")
local dir = opts.results .. (student and "/baselines" or "/teachers")
skd.mkdir(dir)
io.stderr:write(string.format("%s: PSPNet-ResNet%d (width %g, head %d), %.2f M parameters, %s (%d train / %d val)\n",
  opts.role, depth, width, head, net:num_parameters() / 1e6, opts.dataset, #train_ds, #val_ds))

local t0 = skd.clock()
local r = E.train_alone(net, train_ds, opts, {name = opts.role, iterations = opts.iterations,
  log = dir .. "/" .. name .. "-log.jsonl", checkpoint = dir .. "/" .. name .. "-last.safetensors",
  checkpoint_every = tonumber(os.getenv("SKD_CHECKPOINT_EVERY")) or 200, resume = opts.resume,
  class_weights = class_weights})
if r.interrupted then os.exit(130) end
local seconds = skd.clock() - t0
local cm = E.evaluate(net, val_ds, opts)
print(cm:table(train_ds.classes))
print(string.format("%s %s: val mIoU %.2f%%, pixel accuracy %.2f%%, %s training, %.1f img/s",
  opts.role, name, 100 * cm:miou(), 100 * cm:pixel_accuracy(), utils.duration(seconds), r.images_per_second))
local path = dir .. "/" .. name .. ".safetensors"
local script = utils.read_file(arg[0]) or ""
skd.save(path, net:state_dict(), {role = opts.role, miou = string.format("%.4f", cm:miou()),
  dataset = opts.dataset, iterations = tostring(opts.iterations), seed = tostring(opts.seed),
  train_seconds = string.format("%.1f", seconds), class_weights = opts.class_weights, images_per_second = string.format("%.2f", r.images_per_second),
  script_hash = utils.hash(script), arch = name})
io.stderr:write("saved " .. path .. "\n")
