-- skd.experiment — what the experiment scripts share: command-line flags, the dataset and
-- its loaders, the network presets, and the teacher (loaded from its cached checkpoint or
-- trained once and cached).
local utils = require "skd.utils"
local train = require "skd.train"
local E = {}

-- ---------------------------------------------------------------- flags

-- spec: list of {name, kind ("flag"|"number"|"string"), default, help}. Returns a table of
-- values; --help prints usage and exits 0; an unknown flag or a bad value exits 1 with a
-- message naming it.
function E.parse_args(argv, spec, usage)
  local opts, byname = {}, {}
  for _, s in ipairs(spec) do
    byname[s[1]] = s
    opts[s[1]:gsub("-", "_")] = s[3]
  end
  local function help()
    local lines = {usage, "", "options:"}
    for _, s in ipairs(spec) do
      local flag = "--" .. s[1] .. (s[2] == "flag" and "" or (" " .. s[2]:upper()))
      local def = s[3] ~= nil and s[2] ~= "flag" and ("  (default " .. tostring(s[3]) .. ")") or ""
      lines[#lines + 1] = string.format("  %-26s %s%s", flag, s[4], def)
    end
    lines[#lines + 1] = string.format("  %-26s %s", "--help", "this text")
    return table.concat(lines, "\n")
  end
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--help" or a == "-h" then print(help()); os.exit(0) end
    local name, inline = a:match("^%-%-([%w%-]+)=(.*)$")
    name = name or a:match("^%-%-([%w%-]+)$")
    local s = name and byname[name]
    if not s then
      io.stderr:write(string.format("%s: unknown argument '%s'\n\n%s\n", arg and arg[0] or "skd", a, help()))
      os.exit(1)
    end
    local key = name:gsub("-", "_")
    if s[2] == "flag" then
      opts[key] = true
    else
      local v = inline
      if not v then i = i + 1; v = argv[i] end
      if v == nil then
        io.stderr:write(string.format("--%s needs a value (%s)\n", name, s[2])); os.exit(1)
      end
      if s[2] == "number" then
        local n = tonumber(v)
        if not n then io.stderr:write(string.format("--%s expects a number, got '%s'\n", name, v)); os.exit(1) end
        v = n
      end
      opts[key] = v
    end
    i = i + 1
  end
  return opts
end

-- "96x128" -> {96, 128}
function E.parse_size(s)
  local h, w = tostring(s):match("^(%d+)x(%d+)$")
  if not h then error("size must look like HxW (e.g. 96x128), got '" .. tostring(s) .. "'", 2) end
  return {tonumber(h), tonumber(w)}
end

-- ---------------------------------------------------------------- data

-- CamVid statistics (computed on the 180x240 train split) for normalisation; the synthetic
-- scenes are close enough to natural-image statistics to share ImageNet's.
local NORM = {
  synthetic = {mean = {0.485, 0.456, 0.406}, std = {0.229, 0.224, 0.225}},
  camvid = {mean = {0.390, 0.405, 0.414}, std = {0.297, 0.306, 0.301}},
  cityscapes = {mean = {0.287, 0.325, 0.284}, std = {0.187, 0.190, 0.187}},
}

function E.shared_dir()
  local env = os.getenv("SKD_SHARED")
  if env and skd.exists(env) then return env end
  for _, p in ipairs({"../shared", "../../shared"}) do
    if skd.exists(p .. "/data") then return p end
  end
end

-- Returns train and val datasets for opts.dataset ("synthetic" | "camvid" | "cityscapes").
function E.datasets(opts)
  local name = opts.dataset or "synthetic"
  if name == "synthetic" then
    local size = opts.size and E.parse_size(opts.size) or {96, 128}
    return skd.data.synthetic{split = "train", n = opts.train_n or 400, size = size, seed = opts.data_seed or 1},
           skd.data.synthetic{split = "val", n = opts.val_n or 100, size = size, seed = opts.data_seed or 1}
  elseif name == "camvid" then
    local root = opts.data or (E.shared_dir() and E.shared_dir() .. "/data/camvid/180x240")
    if not root then error("camvid: no data folder; pass --data DIR (the SegNet CamVid layout)", 2) end
    return skd.data.camvid{root = root, split = "train"}, skd.data.camvid{root = root, split = "val"}
  elseif name == "cityscapes" then
    if not opts.data then error("cityscapes: pass --data DIR (leftImg8bit/ and gtFine/ inside)", 2) end
    return skd.data.cityscapes{root = opts.data, split = "train"}, skd.data.cityscapes{root = opts.data, split = "val"}
  end
  error("unknown dataset '" .. tostring(name) .. "' (synthetic, camvid or cityscapes)", 2)
end

function E.normalisation(dataset_name)
  return NORM[dataset_name or "synthetic"] or NORM.synthetic
end

-- Training loader: random scale, crop, flip, normalisation (method.md §5), seeded.
function E.train_loader(ds, opts)
  local norm = E.normalisation(opts.dataset)
  -- random scale, then a crop back to a fixed size so images batch (default: the first
  -- sample's size; padding is the mean for the image, 255 for the label)
  local crop = opts.crop and E.parse_size(opts.crop)
  if not crop then
    local s = ds[1].label
    crop = {s:size(1), s:size(2)}
  end
  return skd.data.loader(ds, {batch = opts.batch or 8, shuffle = true, seed = opts.seed or 1,
    drop_last = true, prefetch = true,
    transform = skd.data.transform{scale = opts.scale or {0.75, 1.5}, crop = crop,
                                   flip = true, mean = norm.mean, std = norm.std}})
end

-- Validation view of a dataset: samples normalised, nothing random.
function E.val_transform(opts)
  local norm = E.normalisation(opts.dataset)
  local t = skd.data.transform{mean = norm.mean, std = norm.std}
  return function(sample) return t(sample).image end
end

-- ---------------------------------------------------------------- networks

function E.student(opts, num_classes)
  return skd.models.pspnet{
    backbone = {depth = opts.student_depth or 18, width = opts.student_width or 0.5,
                deep_stem = true, output_stride = 8},
    num_classes = num_classes, head_channels = opts.student_head or 128, aux = true}
end

function E.teacher_spec(opts)
  return {depth = opts.teacher_depth or 18, width = opts.teacher_width or 1.0,
          head = opts.teacher_head or 512}
end

function E.teacher_model(opts, num_classes)
  local s = E.teacher_spec(opts)
  return skd.models.pspnet{backbone = {depth = s.depth, width = s.width, deep_stem = true,
                                       output_stride = 8},
                           num_classes = num_classes, head_channels = s.head, aux = true}
end

function E.teacher_path(opts)
  local s = E.teacher_spec(opts)
  local cw = (opts.class_weights or "none") ~= "none" and ("-cw" .. opts.class_weights) or ""
  return string.format("%s/teachers/%s-pspnet-r%d-w%g%s.safetensors", opts.results or "results",
                       opts.dataset or "synthetic", s.depth, s.width, cw)
end

-- opts.class_weights: "none" (nil) or "median" (median-frequency balancing over up to 200
-- training images). Returns nil or the C-vector for the CE's weight option, and says so.
function E.class_weights(train_ds, opts)
  local how = opts.class_weights or "none"
  if how == "none" then return nil end
  if how ~= "median" then
    error("class weights must be none or median, got '" .. tostring(how) .. "'", 2)
  end
  local w = skd.data.class_weights(train_ds, {samples = 200})
  local parts = {}
  for c = 1, #train_ds.classes do
    parts[c] = string.format("%s %.2f", train_ds.classes[c], w:get(c))
  end
  io.stderr:write("class weights (median frequency): " .. table.concat(parts, ", ") .. "\n")
  return w
end

-- Evaluates a model on the val set; returns the confusion matrix.
function E.evaluate(model, val, opts)
  return train.evaluate(model, val, {transform = E.val_transform(opts), flip = opts.flip_eval,
                                     num_classes = #val.classes, limit = opts.val_limit})
end

-- Trains a network alone (CE + aux CE): the teacher, and the students' baseline recipe.
function E.train_alone(net, train_ds, opts, run_opts)
  local loader = E.train_loader(train_ds, opts)
  local opt = skd.optim.sgd(net, {lr = opts.lr or 0.01, momentum = 0.9, weight_decay = 5e-4})
  local iterations = run_opts.iterations
  local ce_opts = {ignore_index = 255, weight = run_opts.class_weights}
  net:train()
  return train.run{
    name = run_opts.name, iterations = iterations, images_per_step = opts.batch or 8,
    quiet = opts.quiet, log = run_opts.log,
    lr = function(it) return skd.optim.poly(opts.lr or 0.01, it - 1, iterations) end,
    step = function(it, lr)
      local b = loader:next()
      opt:set_lr(lr)
      opt:zero_grad()
      local out = net(b.image)
      local ce = skd.losses.cross_entropy(out.logits, b.label, ce_opts)
      local aux = skd.losses.cross_entropy(out.aux, b.label, ce_opts)
      local loss = ce + aux * 0.4
      loss:backward()
      opt:step()
      return {ce = ce:item(), aux = aux:item()}
    end,
    checkpoint = run_opts.checkpoint and {path = run_opts.checkpoint, every = run_opts.checkpoint_every or 500,
                                          parts = {model = net, optimizer = opt}, state = loader},
    resume = run_opts.resume,
  }
end

-- The teacher: loaded from results/teachers/… when cached (and its metadata says it fits),
-- otherwise trained with opts.teacher_iterations (and class_weights, E.class_weights' vector
-- for opts.class_weights) and cached with its val mIoU.
function E.get_teacher(train_ds, val_ds, opts, class_weights)
  local path = E.teacher_path(opts)
  local net = E.teacher_model(opts, #train_ds.classes)
  if skd.exists(path) and not opts.retrain_teacher then
    local tensors, meta = skd.load(path)
    net:load_state_dict(tensors)
    io.stderr:write(string.format("teacher: loaded %s (val mIoU %s)\n", path, meta.miou or "?"))
    return net, tonumber(meta.miou), meta
  end
  io.stderr:write(string.format("teacher: no cached %s; training it (%d iterations)\n", path,
                                opts.teacher_iterations))
  skd.manual_seed(opts.seed or 1)
  local t0 = skd.clock()
  local r = E.train_alone(net, train_ds, opts, {name = "teacher", iterations = opts.teacher_iterations,
    log = (opts.results or "results") .. "/teachers/" .. (opts.dataset or "synthetic") .. "-log.jsonl",
    class_weights = class_weights})
  local seconds = skd.clock() - t0
  local cm = E.evaluate(net, val_ds, opts)
  local miou = cm:miou()
  local meta = {role = "teacher", miou = string.format("%.4f", miou), dataset = opts.dataset or "synthetic",
                iterations = tostring(opts.teacher_iterations), seed = tostring(opts.seed or 1),
                train_seconds = string.format("%.1f", seconds),
                images_per_second = string.format("%.2f", r.images_per_second),
                class_weights = opts.class_weights or "none"}
  skd.mkdir(path:match("^(.*)/[^/]*$"))
  skd.save(path, net:state_dict(), meta)
  io.stderr:write(string.format("teacher: val mIoU %.2f%%, saved %s\n", 100 * miou, path))
  return net, miou, meta
end

return E
